package mysqlfake

import (
	"regexp"
	"strings"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

// Column describes one column of a scripted result set.
type Column struct {
	Name string
	// Type is the column's wire type. The zero value (TypeDecimal, which
	// servers no longer send; use TypeNewDecimal) means "infer it from the
	// first non-NULL value": integers become LONGLONG, floats DOUBLE,
	// time.Time DATETIME, bools TINY and everything else VAR_STRING.
	Type     mysqlwire.FieldType
	Unsigned bool
}

// ResultSet is a scripted result set. Row values may be nil (SQL NULL), any
// Go integer, float32/float64, bool, string, []byte or time.Time; the double
// encodes them in the text protocol for COM_QUERY and in the binary protocol
// for COM_STMT_EXECUTE.
type ResultSet struct {
	Columns []Column
	Rows    [][]any
	// Warnings and Status go into the terminating EOF/OK; Status is added to
	// the connection's own flags (autocommit, in transaction).
	Warnings uint16
	Status   mysqlwire.StatusFlags
}

// OKResult is a scripted OK packet.
type OKResult struct {
	AffectedRows uint64
	LastInsertID uint64
	Warnings     uint16
	// Status is added to the connection's own flags.
	Status mysqlwire.StatusFlags
	Info   string
	// SessionState is sent (with SERVER_SESSION_STATE_CHANGED) only to a
	// client that asked for CLIENT_SESSION_TRACK, like a real server. Build
	// entries with SysVarChange, SchemaChange or StateChange.
	SessionState []SessionChange
}

// SessionChange is one session state change entry of an OK packet.
type SessionChange struct {
	Type uint8 // mysqlwire.SessionTrack*
	Data []byte
}

// SysVarChange is the entry a server sends when a tracked system variable
// changed.
func SysVarChange(name, value string) SessionChange {
	d := mysqlwire.AppendLenEncStr(nil, name)
	return SessionChange{Type: mysqlwire.SessionTrackSystemVariables, Data: mysqlwire.AppendLenEncStr(d, value)}
}

// SchemaChange is the entry a server sends when the default schema changed.
func SchemaChange(schema string) SessionChange {
	return SessionChange{Type: mysqlwire.SessionTrackSchema, Data: mysqlwire.AppendLenEncStr(nil, schema)}
}

// StateChange is the entry a server sends when session state changed in a
// way it does not detail: the flag "1" itself, without the length prefix
// the other entry types wrap their value in.
func StateChange() SessionChange {
	return SessionChange{Type: mysqlwire.SessionTrackStateChange, Data: []byte("1")}
}

// Error is a scripted ERR packet.
type Error struct {
	Code     mysqlwire.ErrCode
	SQLState string // empty: the code's usual SQLSTATE (mysqlwire.ErrCode.SQLState)
	Message  string
}

// Drop says how a scripted response ends the connection instead of answering.
type Drop int

const (
	// NoDrop answers normally.
	NoDrop Drop = iota
	// DropClose closes the connection in order (FIN) without answering.
	DropClose
	// DropReset aborts the connection (RST, SO_LINGER 0) without answering.
	DropReset
	// DropMidResult sends the column definitions and half of the rows of
	// the response's ResultSet (at least its header), then resets.
	DropMidResult
)

// Response is what a handler answers to a statement. Exactly one of Result,
// OK and Err is used (in that order of preference); none of them means an
// empty OK. Delay, Hang and Drop apply before (or, for DropMidResult, in
// the middle of) the answer.
type Response struct {
	Result *ResultSet
	OK     *OKResult
	Err    *Error
	// Delay postpones the answer (the connection reads nothing meanwhile,
	// like a server busy with the statement).
	Delay time.Duration
	// Hang never answers: the connection stays open, reading nothing, until
	// the client or the test closes it.
	Hang bool
	Drop Drop
}

// Rows is a result set response with VAR_STRING (or inferred) columns.
func Rows(columns []string, rows ...[]any) Response {
	rs := &ResultSet{Rows: rows}
	for _, c := range columns {
		rs.Columns = append(rs.Columns, Column{Name: c})
	}
	return Response{Result: rs}
}

// Affected is an OK response with affected rows and last insert id.
func Affected(rows, lastInsertID uint64) Response {
	return Response{OK: &OKResult{AffectedRows: rows, LastInsertID: lastInsertID}}
}

// OK is an empty OK response.
func OK() Response { return Response{OK: &OKResult{}} }

// Fail is an ERR response; an empty sqlState takes the code's usual one.
func Fail(code mysqlwire.ErrCode, sqlState, message string) Response {
	return Response{Err: &Error{Code: code, SQLState: sqlState, Message: message}}
}

// Hang is a response that never comes.
func Hang() Response { return Response{Hang: true} }

// Disconnect is a response that ends the connection the way d says.
func Disconnect(d Drop) Response { return Response{Drop: d} }

// After returns r delayed by d.
func (r Response) After(d time.Duration) Response {
	r.Delay = d
	return r
}

// Query is what a handler is asked to answer.
type Query struct {
	// SQL is the statement text (of COM_QUERY, or of the prepared statement
	// for COM_STMT_PREPARE and COM_STMT_EXECUTE).
	SQL string
	// ConnID is the connection's id (the one in its greeting).
	ConnID uint32
	// Conn gives access to the connection's session state.
	Conn *Conn
	// Preparing is set when COM_STMT_PREPARE asks for the statement's
	// shape: the columns of a returned ResultSet (its rows are ignored) and
	// an Err make the prepare fail.
	Preparing bool
	// Executing is set for COM_STMT_EXECUTE; Params holds the bound values
	// (nil for NULL, int64, uint64, float64, string for string-like and
	// long data, mysqlwire.DateTime or mysqlwire.Duration).
	Executing bool
	Params    []any
}

// HandlerFunc answers one statement.
type HandlerFunc func(q Query) Response

type rule struct {
	exact  string
	prefix string
	re     *regexp.Regexp
	match  func(sql string) bool
	fn     HandlerFunc
}

func (r *rule) matches(sql string) bool {
	switch {
	case r.match != nil:
		return r.match(sql)
	case r.re != nil:
		return r.re.MatchString(sql)
	case r.prefix != "":
		return len(sql) >= len(r.prefix) && strings.EqualFold(sql[:len(r.prefix)], r.prefix)
	default:
		return sql == r.exact
	}
}

func static(r Response) HandlerFunc { return func(Query) Response { return r } }

// On answers the statement whose text is exactly sql (after trimming
// surrounding white space and a trailing semicolon) with r.
func (s *Server) On(sql string, r Response) { s.addRule(&rule{exact: normalize(sql), fn: static(r)}) }

// OnPrefix answers statements that start with prefix (case-insensitively).
func (s *Server) OnPrefix(prefix string, r Response) {
	s.addRule(&rule{prefix: prefix, fn: static(r)})
}

// OnRegexp answers statements matching expr. It panics on a bad expression,
// like regexp.MustCompile: scripts are test code.
func (s *Server) OnRegexp(expr string, r Response) {
	s.addRule(&rule{re: regexp.MustCompile(expr), fn: static(r)})
}

// OnFunc answers statements for which match reports true with fn.
func (s *Server) OnFunc(match func(sql string) bool, fn HandlerFunc) {
	s.addRule(&rule{match: match, fn: fn})
}

// Default replaces the answer to statements no rule and no built-in answer
// takes (by default ERR 1064 42000, the server's syntax error).
func (s *Server) Default(fn HandlerFunc) {
	s.mu.Lock()
	s.fallback = fn
	s.mu.Unlock()
}

// addRule puts r first: the most recently registered matching rule wins, so
// a test can override a shared script.
func (s *Server) addRule(r *rule) {
	s.mu.Lock()
	s.rules = append([]*rule{r}, s.rules...)
	s.mu.Unlock()
}

// lookup finds the scripted handler for sql, or nil.
func (s *Server) lookup(sql string) HandlerFunc {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.rules {
		if r.matches(sql) {
			return r.fn
		}
	}
	return nil
}

func normalize(sql string) string {
	sql = strings.TrimSpace(sql)
	sql = strings.TrimSuffix(sql, ";")
	return strings.TrimSpace(sql)
}

// syntaxError is the server's answer to a statement it cannot parse.
func syntaxError(q Query) Response {
	near := q.SQL
	if len(near) > 80 {
		near = near[:80]
	}
	return Fail(mysqlwire.ErParseError, "42000",
		"You have an error in your SQL syntax; check the manual that corresponds to your MariaDB server version for the right syntax to use near '"+near+"' at line 1")
}
