package main

import (
	"bytes"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/httpd"
	"github.com/scalestack/scalestack/httpwire"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
	"github.com/scalestack/scalestack/reactor"
)

// The HTTP -> SQL gateway (`scalestack http --sql-path /v1/query ...`):
// for clients that cannot hold a MySQL connection (serverless functions,
// edge workers). POST a JSON object {"sql": "...", "params": [...]} with
// HTTP basic authentication of a users-file account (checked against its
// native hash, SHA1(SHA1(password))); the statement runs as a prepared
// statement through the MySQL proxy's pool (the embedding API of
// pool/mysqlproxy: the same N backends, queue and refusals) as that
// account, and the answer streams back as JSON while the rows arrive:
//
//	{"columns":[{"name":"id","type":"INT"},...],"rows":[[1,"a"],...],"warnings":0}
//	{"affected_rows":1,"last_insert_id":7,"warnings":0}
//	{"error":{"code":1146,"sqlstate":"42S02","message":"Table 'db.t' doesn't exist"}}
//
// Column types are the SQL type names go-sql-driver's DatabaseTypeName
// gives. Values: NULL is null; integers, FLOAT, DOUBLE and YEAR are
// numbers; DECIMAL, dates, times and text are strings; binary strings
// (BLOB, BINARY, VARBINARY, BIT, GEOMETRY of the binary character set)
// are base64. Parameters: numbers (integers bind as BIGINT, others as
// DOUBLE), strings, true/false (1/0) and null.
//
// Each request is one statement in autocommit mode: transactions (BEGIN,
// START TRANSACTION, COMMIT, ROLLBACK, SAVEPOINT, XA) are refused with
// error 9005 (0A000), as are statements that would need a session (SET,
// user variables, GET_LOCK, temporary tables, LOCK TABLES, several
// statements); see "Embedded callers" in pool/mysqlproxy.
//
// HTTP status: 200 with the result, 400 with the error for a statement
// the server or the gateway refused (and for a body that is not such a
// JSON object), 401 without valid credentials, 405 for another method,
// 413 for a body over --sql-max-body, 503 when no backend came within the
// queue timeout or none can be reached (9001, 9003), 502 when the backend
// broke (9004). An error after rows were sent (the backend broke mid-
// result) ends the JSON with "error" beside "rows".
//
// Memory is bounded per request: the JSON of rows waits in a buffer of at
// most sqlBufferHigh bytes (plus one row) until the client's connection
// takes it; beyond, the backend is not read until the client catches up.

const (
	sqlBufferHigh = 256 << 10 // pause the rows beyond this much JSON waiting
	sqlBufferLow  = 64 << 10  // and resume below this
)

// sqlGateway is the handler; its per-request state is per loop.
type sqlGateway struct {
	p       *mysqlproxy.Proxy
	path    string // where it is mounted (--sql-path)
	schema  string
	maxBody int
	// loops hold, per loop, the requests whose body is arriving (a
	// handler is shared by every connection of every loop).
	loops []sqlLoop
	// pendingBodies counts the requests whose body is arriving, over the
	// loops (for /status).
	pendingBodies atomic.Int64
	// dummy is compared with when the account is unknown, so that a wrong
	// name costs the same time as a wrong password.
	dummy []byte
}

func newSQLGateway(p *mysqlproxy.Proxy, schema string, maxBody int) *sqlGateway {
	return &sqlGateway{p: p, schema: schema, maxBody: maxBody, dummy: mysqlwire.NativePasswordHash([]byte("\x00no account"))}
}

// sqlLoop is one loop's requests whose body is arriving, by response.
// Their bodies together are bounded by sqlBodyBudget: strangers that send
// part of a body and stall cannot make the gateway hold more.
type sqlLoop struct {
	pending  map[*httpd.Response]*sqlQuery
	buffered int
	// Entries whose connection closed mid-body (the handler is not told)
	// are dropped when pending grows to sweepAt, and at the first request
	// a second after the last sweep: each request pays O(1), amortised.
	sweepAt   int
	lastSweep time.Time

	// stmts keeps the statements of recent requests (by schema and text),
	// so that a repeated statement stays prepared on the backends instead
	// of being prepared and closed for each request; the least recently
	// used beyond sqlStmtCache is given up.
	stmts    map[string]*sqlStmt
	stmtTick uint64
}

type sqlStmt struct {
	st      *mysqlproxy.Stmt
	lastUse uint64
}

// sqlStmtCache bounds each loop's kept statements (each costs a server-
// side statement on the backends that ran it, within --backend-max-stmts).
const sqlStmtCache = 256

// stmt returns the loop's Stmt for text, made (and checked) on first use.
func (sl *sqlLoop) stmt(g *sqlGateway, l *reactor.Loop, text string) (*mysqlproxy.Stmt, error) {
	sl.stmtTick++
	if e := sl.stmts[text]; e != nil {
		e.lastUse = sl.stmtTick
		return e.st, nil
	}
	st, err := g.p.PrepareStmt(l, g.schema, text)
	if err != nil {
		return nil, err
	}
	if len(sl.stmts) >= sqlStmtCache {
		var oldKey string
		var old *sqlStmt
		for k, e := range sl.stmts {
			if old == nil || e.lastUse < old.lastUse {
				oldKey, old = k, e
			}
		}
		delete(sl.stmts, oldKey)
		old.st.Close() // requests running it finish; new ones make it again
	}
	sl.stmts[text] = &sqlStmt{st: st, lastUse: sl.stmtTick}
	return st, nil
}

// sqlBodyBudget bounds the request bodies one loop holds while they
// arrive; a request that would go over it gets 503.
const sqlBodyBudget = 32 << 20

// attach sizes the per-loop state (before any request).
func (g *sqlGateway) attach(e *reactor.Engine) {
	g.loops = make([]sqlLoop, len(e.Loops()))
	for i := range g.loops {
		g.loops[i] = sqlLoop{pending: map[*httpd.Response]*sqlQuery{}, sweepAt: 64, stmts: map[string]*sqlStmt{}}
	}
}

// add records q, first dropping the requests of closed connections (see
// sweepAt).
func (sl *sqlLoop) add(q *sqlQuery) {
	if now := q.w.Loop().Now(); len(sl.pending) >= sl.sweepAt || len(sl.pending) > 0 && now.Sub(sl.lastSweep) >= time.Second {
		sl.lastSweep = now
		for w, old := range sl.pending {
			if w.Closed() {
				sl.remove(old)
			}
		}
		sl.sweepAt = max(64, 2*len(sl.pending))
	}
	if old := sl.pending[q.w]; old != nil {
		sl.remove(old)
	}
	sl.pending[q.w] = q
	q.g.pendingBodies.Add(1)
}

func (sl *sqlLoop) remove(q *sqlQuery) {
	sl.buffered -= len(q.body)
	delete(sl.pending, q.w)
	q.g.pendingBodies.Add(-1)
}

// authenticate checks HTTP basic credentials against the users file and
// returns the account.
func (g *sqlGateway) authenticate(req *httpwire.Request) (string, []byte, bool) {
	h := req.Header("Authorization")
	const scheme = "Basic "
	if len(h) <= len(scheme) || !bytes.EqualFold(h[:len(scheme)], []byte(scheme)) {
		return "", nil, false
	}
	raw, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(h[len(scheme):])))
	if err != nil {
		return "", nil, false
	}
	name, password, ok := bytes.Cut(raw, []byte(":"))
	if !ok {
		return "", nil, false
	}
	u := g.p.Users()[string(name)]
	stored := g.dummy
	if u != nil && !u.NoPassword {
		stored = u.Native
	}
	match := subtle.ConstantTimeCompare(mysqlwire.NativePasswordHash(password), stored) == 1
	if u != nil && u.NoPassword {
		match = len(password) == 0
	}
	if u == nil || !match {
		return "", nil, false
	}
	// The password (a fresh copy, decoded above) goes with the statement,
	// so that it can run as the account's own server account
	// (Request.Password); it is never logged or kept past the request.
	return u.Name, password, true
}

// Serve implements httpd.Handler: the head of a query.
func (g *sqlGateway) Serve(w *httpd.Response, req *httpwire.Request) {
	if len(w.Below(req.Path)) != 1 {
		w.Error(404) // the gateway is its path only
		return
	}
	if !req.IsMethod("POST") {
		w.Header("Allow", "POST")
		w.Error(405)
		return
	}
	account, password, ok := g.authenticate(req)
	if !ok {
		w.Header("WWW-Authenticate", `Basic realm="scalestack", charset="UTF-8"`)
		w.Error(401)
		return
	}
	if !req.HasBody() {
		sqlReply(w, 400, sqlErrorJSON(nil, &mysqlproxy.SQLError{Code: mysqlwire.ErEmptyQuery, SQLState: "42000", Message: "Query was empty"}))
		return
	}
	if req.ContentLength > int64(g.maxBody) {
		w.Error(413)
		return
	}
	q := &sqlQuery{g: g, w: w, account: account, password: password}
	q.req.Sink = q
	g.loops[w.Loop().ID()].add(q)
}

// OnBody implements httpd.BodyHandler: the JSON arrives.
func (g *sqlGateway) OnBody(w *httpd.Response, data []byte, last bool) {
	sl := &g.loops[w.Loop().ID()]
	q := sl.pending[w]
	if q == nil {
		return // answered at the head (401, 405, 413)
	}
	if q.refused == 0 {
		switch {
		case len(q.body)+len(data) > g.maxBody:
			q.refused = 413
		case sl.buffered+len(data) > sqlBodyBudget:
			q.refused = 503
		}
		if q.refused != 0 {
			sl.buffered -= len(q.body)
			q.body = nil
		} else {
			q.body = append(q.body, data...)
			sl.buffered += len(data)
		}
	}
	if !last {
		return
	}
	sl.remove(q)
	if q.refused != 0 {
		w.Error(q.refused)
		return
	}
	q.start()
}

// sqlQuery is one request's statement and its streamed answer; it is the
// statement's Sink and the response's BodySource.
type sqlQuery struct {
	g       *sqlGateway
	w       *httpd.Response
	account string
	// password is the account's, from its HTTP basic credentials (a live
	// secret: never logged).
	password []byte
	body     []byte
	refused  int // 413 or 503: the body is dropped as it arrives

	req      mysqlproxy.Request
	out      []byte // JSON not yet taken by the response
	outAt    int
	streamed bool // the response is started and pulls from out
	done     bool // the statement ended; out holds the rest of the JSON
	paused   bool
	rows     int
	cols     []sqlCol
}

type sqlCol struct {
	decimals uint8
	binary   bool // a binary string: base64
}

// sqlRequestBody is what a client posts.
type sqlRequestBody struct {
	SQL    *string           `json:"sql"`
	Params []json.RawMessage `json:"params"`
}

func (q *sqlQuery) start() {
	var in sqlRequestBody
	dec := json.NewDecoder(bytes.NewReader(q.body))
	dec.DisallowUnknownFields()
	err := dec.Decode(&in)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value")
	}
	if err == nil && in.SQL == nil {
		err = errors.New(`"sql" is missing`)
	}
	var params []mysqlwire.Value
	for i, raw := range in.Params {
		if err != nil {
			break
		}
		var v mysqlwire.Value
		v, err = sqlParam(raw)
		if err != nil {
			err = fmt.Errorf("params[%d]: %w", i, err)
		}
		params = append(params, v)
	}
	q.body = nil
	if err != nil {
		sqlReply(q.w, 400, sqlErrorJSON(nil, &mysqlproxy.SQLError{Code: mysqlwire.ErUnknownError, SQLState: "HY000",
			Message: "request body: want {\"sql\": \"...\", \"params\": [...]}: " + err.Error()}))
		return
	}
	st, err := q.g.loops[q.w.Loop().ID()].stmt(q.g, q.w.Loop(), *in.SQL)
	if err != nil {
		q.fail(err)
		return
	}
	q.req.Account, q.req.Stmt, q.req.Params, q.req.Password = q.account, st, params, q.password
	q.req.Start()
}

// sqlParam binds one JSON parameter.
func sqlParam(raw json.RawMessage) (mysqlwire.Value, error) {
	raw = bytes.TrimSpace(raw)
	switch {
	case len(raw) == 0:
		return mysqlwire.Value{}, errors.New("empty")
	case string(raw) == "null":
		return mysqlwire.Value{Type: mysqlwire.TypeNull, Null: true}, nil
	case string(raw) == "true", string(raw) == "false":
		b := int64(0)
		if raw[0] == 't' {
			b = 1
		}
		return mysqlwire.Value{Type: mysqlwire.TypeTiny, Int: b}, nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return mysqlwire.Value{}, err
		}
		return mysqlwire.Value{Type: mysqlwire.TypeVarString, Bytes: []byte(s)}, nil
	case raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9'):
		s := string(raw)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return mysqlwire.Value{Type: mysqlwire.TypeLongLong, Int: n}, nil
		}
		if n, err := strconv.ParseUint(s, 10, 64); err == nil {
			return mysqlwire.Value{Type: mysqlwire.TypeLongLong, Unsigned: true, Uint: n}, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsInf(f, 0) {
			return mysqlwire.Value{}, fmt.Errorf("number %s out of range", s)
		}
		return mysqlwire.Value{Type: mysqlwire.TypeDouble, Float: f}, nil
	}
	return mysqlwire.Value{}, errors.New("want a string, a number, true, false or null")
}

// sqlStatus is the HTTP status of an error answered before any row.
func sqlStatus(err error) int {
	var e *mysqlproxy.SQLError
	if errors.As(err, &e) {
		switch e.Code {
		case mysqlproxy.ErQueueTimeout, mysqlproxy.ErBackendUnavailable:
			return 503
		case mysqlproxy.ErBackendLost:
			return 502
		}
		return 400
	}
	return 500
}

// sqlErrorJSON appends {"error":{...}} (without the braces around it when
// dst continues an object: the caller adds them).
func sqlErrorJSON(dst []byte, err error) []byte {
	var e *mysqlproxy.SQLError
	if !errors.As(err, &e) {
		e = &mysqlproxy.SQLError{Code: mysqlwire.ErUnknownError, SQLState: "HY000", Message: err.Error()}
	}
	dst = append(dst, `{"error":{"code":`...)
	dst = strconv.AppendUint(dst, uint64(e.Code), 10)
	dst = append(dst, `,"sqlstate":`...)
	dst = appendJSONString(dst, []byte(e.SQLState))
	dst = append(dst, `,"message":`...)
	dst = appendJSONString(dst, []byte(e.Message))
	return append(dst, "}}\n"...)
}

func sqlReply(w *httpd.Response, status int, body []byte) {
	w.Header("Cache-Control", "no-store")
	w.Reply(status, "application/json", body)
}

// fail answers an error that came before any row.
func (q *sqlQuery) fail(err error) {
	sqlReply(q.w, sqlStatus(err), sqlErrorJSON(nil, err))
}

// Column implements mysqlproxy.Sink.
func (q *sqlQuery) Column(r *mysqlproxy.Request, i int, def *mysqlwire.ColumnDefinition) {
	if i == 0 {
		q.out = append(q.out[:0], `{"columns":[`...)
		q.cols = q.cols[:0]
	} else {
		q.out = append(q.out, ',')
	}
	q.cols = append(q.cols, sqlCol{decimals: def.Decimals, binary: def.CharacterSet == 63 && stringType(def.Type)})
	q.out = append(q.out, `{"name":`...)
	q.out = appendJSONString(q.out, def.Name)
	q.out = append(q.out, `,"type":`...)
	q.out = appendJSONString(q.out, []byte(sqlTypeName(def)))
	q.out = append(q.out, '}')
	if i == r.NumColumns()-1 {
		q.out = append(q.out, `],"rows":[`...)
		if !q.w.Closed() {
			q.streamed = true
			q.w.Header("Content-Type", "application/json")
			q.w.Header("Cache-Control", "no-store")
			q.w.WriteHeader(200, -1)
			q.w.Stream(q)
		}
	}
}

// Row implements mysqlproxy.Sink: the row's JSON joins the buffer the
// response pulls from; beyond sqlBufferHigh, reading pauses.
func (q *sqlQuery) Row(r *mysqlproxy.Request, row *mysqlproxy.Row) bool {
	if !q.streamed {
		// The client left before the response started: nobody reads.
		q.done = true
		r.Cancel()
		return true
	}
	if q.rows > 0 {
		q.out = append(q.out, ',')
	}
	q.rows++
	q.out = append(q.out, '[')
	for i := range row.Len() {
		if i > 0 {
			q.out = append(q.out, ',')
		}
		v, err := row.Next()
		if err != nil {
			q.out = append(q.out, "null"...)
			continue
		}
		q.out = appendJSONValue(q.out, v, q.cols[i])
	}
	q.out = append(q.out, ']')
	q.w.Pump()
	if len(q.out)-q.outAt > sqlBufferHigh {
		q.paused = true
		return false
	}
	return true
}

// Done implements mysqlproxy.Sink.
func (q *sqlQuery) Done(r *mysqlproxy.Request, err error) {
	if !q.streamed {
		if q.w.Closed() {
			return
		}
		if err != nil {
			q.fail(err)
			return
		}
		if r.NumColumns() > 0 { // a result set whose response could not start
			return
		}
		b := append(q.out[:0], `{"affected_rows":`...)
		b = strconv.AppendUint(b, r.AffectedRows(), 10)
		b = append(b, `,"last_insert_id":`...)
		b = strconv.AppendUint(b, r.LastInsertID(), 10)
		b = append(b, `,"warnings":`...)
		b = strconv.AppendUint(b, uint64(r.Warnings()), 10)
		b = append(b, "}\n"...)
		sqlReply(q.w, 200, b)
		return
	}
	q.out = append(q.out, ']')
	if err != nil {
		e := sqlErrorJSON(nil, err)
		q.out = append(q.out, ',')
		q.out = append(q.out, e[1:len(e)-2]...) // "error":{...}
	}
	q.out = append(q.out, `,"warnings":`...)
	q.out = strconv.AppendUint(q.out, uint64(r.Warnings()), 10)
	q.out = append(q.out, "}\n"...)
	q.done = true
	q.w.Pump()
}

// ReadBody implements httpd.BodySource.
func (q *sqlQuery) ReadBody(dst []byte) (int, error) {
	n := copy(dst, q.out[q.outAt:])
	q.outAt += n
	if q.outAt == len(q.out) {
		q.out, q.outAt = q.out[:0], 0
	}
	if q.paused && len(q.out)-q.outAt < sqlBufferLow {
		q.paused = false
		q.req.Resume()
	}
	if n > 0 {
		return n, nil
	}
	if q.done {
		return 0, io.EOF
	}
	return 0, httpd.ErrBodyPending
}

// Close implements httpd.BodySource: the body is complete, or the client
// left; a statement still running is canceled (its backend, mid-result,
// is closed and reconnects).
func (q *sqlQuery) Close() {
	if !q.done {
		q.done = true
		q.req.Cancel()
	}
	q.out = nil
}

// stringType reports whether t carries a string (as opposed to a number,
// date or time), whose binary character set means bytes.
func stringType(t mysqlwire.FieldType) bool {
	switch t {
	case mysqlwire.TypeVarchar, mysqlwire.TypeVarString, mysqlwire.TypeString, mysqlwire.TypeTinyBlob,
		mysqlwire.TypeMediumBlob, mysqlwire.TypeLongBlob, mysqlwire.TypeBlob, mysqlwire.TypeBit,
		mysqlwire.TypeGeometry:
		return true
	}
	return false
}

// sqlTypeName is the column's SQL type name as go-sql-driver's
// DatabaseTypeName gives it.
func sqlTypeName(def *mysqlwire.ColumnDefinition) string {
	unsigned := def.Flags&mysqlwire.FlagUnsigned != 0
	bin := def.CharacterSet == 63
	pick := func(signed, uns string) string {
		if unsigned {
			return uns
		}
		return signed
	}
	text := func(txt, b string) string {
		if bin {
			return b
		}
		return txt
	}
	switch def.Type {
	case mysqlwire.TypeBit:
		return "BIT"
	case mysqlwire.TypeBlob:
		return text("TEXT", "BLOB")
	case mysqlwire.TypeDate, mysqlwire.TypeNewDate:
		return "DATE"
	case mysqlwire.TypeDateTime, mysqlwire.TypeDateTime2:
		return "DATETIME"
	case mysqlwire.TypeDecimal, mysqlwire.TypeNewDecimal:
		return "DECIMAL"
	case mysqlwire.TypeDouble:
		return "DOUBLE"
	case mysqlwire.TypeEnum:
		return "ENUM"
	case mysqlwire.TypeFloat:
		return "FLOAT"
	case mysqlwire.TypeGeometry:
		return "GEOMETRY"
	case mysqlwire.TypeInt24:
		return pick("MEDIUMINT", "UNSIGNED MEDIUMINT")
	case mysqlwire.TypeJSON:
		return "JSON"
	case mysqlwire.TypeLong:
		return pick("INT", "UNSIGNED INT")
	case mysqlwire.TypeLongBlob:
		return text("LONGTEXT", "LONGBLOB")
	case mysqlwire.TypeLongLong:
		return pick("BIGINT", "UNSIGNED BIGINT")
	case mysqlwire.TypeMediumBlob:
		return text("MEDIUMTEXT", "MEDIUMBLOB")
	case mysqlwire.TypeNull:
		return "NULL"
	case mysqlwire.TypeSet:
		return "SET"
	case mysqlwire.TypeShort:
		return pick("SMALLINT", "UNSIGNED SMALLINT")
	case mysqlwire.TypeString:
		switch {
		case def.Flags&mysqlwire.FlagEnum != 0:
			return "ENUM"
		case def.Flags&mysqlwire.FlagSet != 0:
			return "SET"
		}
		return text("CHAR", "BINARY")
	case mysqlwire.TypeTime, mysqlwire.TypeTime2:
		return "TIME"
	case mysqlwire.TypeTimestamp, mysqlwire.TypeTimestamp2:
		return "TIMESTAMP"
	case mysqlwire.TypeTiny:
		return pick("TINYINT", "UNSIGNED TINYINT")
	case mysqlwire.TypeTinyBlob:
		return text("TINYTEXT", "TINYBLOB")
	case mysqlwire.TypeVarchar, mysqlwire.TypeVarString:
		return text("VARCHAR", "VARBINARY")
	case mysqlwire.TypeYear:
		return "YEAR"
	}
	return ""
}

// appendJSONValue appends one binary-protocol value as JSON.
func appendJSONValue(dst []byte, v mysqlwire.Value, c sqlCol) []byte {
	if v.Null {
		return append(dst, "null"...)
	}
	switch v.Type {
	case mysqlwire.TypeTiny, mysqlwire.TypeShort, mysqlwire.TypeInt24, mysqlwire.TypeLong, mysqlwire.TypeLongLong, mysqlwire.TypeYear:
		if v.Unsigned {
			return strconv.AppendUint(dst, v.Uint, 10)
		}
		return strconv.AppendInt(dst, v.Int, 10)
	case mysqlwire.TypeFloat:
		return strconv.AppendFloat(dst, v.Float, 'g', -1, 32)
	case mysqlwire.TypeDouble:
		return strconv.AppendFloat(dst, v.Float, 'g', -1, 64)
	case mysqlwire.TypeDate, mysqlwire.TypeNewDate, mysqlwire.TypeDateTime, mysqlwire.TypeDateTime2,
		mysqlwire.TypeTimestamp, mysqlwire.TypeTimestamp2:
		d := v.DateTime
		dst = append(dst, '"')
		dst = appendPadded(dst, uint64(d.Year), 4)
		dst = append(dst, '-')
		dst = appendPadded(dst, uint64(d.Month), 2)
		dst = append(dst, '-')
		dst = appendPadded(dst, uint64(d.Day), 2)
		if v.Type != mysqlwire.TypeDate && v.Type != mysqlwire.TypeNewDate {
			dst = append(dst, ' ')
			dst = appendClock(dst, uint64(d.Hour), d.Minute, d.Second, d.Microsecond, c.decimals)
		}
		return append(dst, '"')
	case mysqlwire.TypeTime, mysqlwire.TypeTime2:
		d := v.Duration
		dst = append(dst, '"')
		if d.Negative {
			dst = append(dst, '-')
		}
		dst = appendClock(dst, uint64(d.Days)*24+uint64(d.Hour), d.Minute, d.Second, d.Microsecond, c.decimals)
		return append(dst, '"')
	}
	if c.binary {
		dst = append(dst, '"')
		dst = base64.StdEncoding.AppendEncode(dst, v.Bytes)
		return append(dst, '"')
	}
	return appendJSONString(dst, v.Bytes)
}

func appendPadded(dst []byte, n uint64, width int) []byte {
	var buf [20]byte
	s := strconv.AppendUint(buf[:0], n, 10)
	for i := len(s); i < width; i++ {
		dst = append(dst, '0')
	}
	return append(dst, s...)
}

// appendClock appends hh:mm:ss with decimals digits of fraction (as the
// server prints them).
func appendClock(dst []byte, h uint64, m, s uint8, us uint32, decimals uint8) []byte {
	dst = appendPadded(dst, h, 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, uint64(m), 2)
	dst = append(dst, ':')
	dst = appendPadded(dst, uint64(s), 2)
	if decimals > 0 && decimals <= 6 {
		var buf [6]byte
		frac := appendPadded(buf[:0], uint64(us), 6)
		dst = append(dst, '.')
		dst = append(dst, frac[:decimals]...)
	}
	return dst
}

// appendJSONString appends s as a JSON string; bytes that are not UTF-8
// become U+FFFD, as encoding/json does.
func appendJSONString(dst, s []byte) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRune(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			dst = append(dst, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			dst = append(dst, '\\', 'u', '2', '0', '2', hex[r&0xF])
		default:
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}

// sqlGatewayFlags declares the HTTP module's gateway flags; the function
// it returns gives nil when --sql-path is empty.
func sqlGatewayFlags(fs *flag.FlagSet) func() (*sqlGateway, error) {
	path := fs.String("sql-path", "", "path of the HTTP -> SQL gateway, e.g. /v1/query: POST {\"sql\": ..., \"params\": [...]} with HTTP basic credentials of a --sql-users account; rows stream back as JSON (empty: off)")
	addr := fs.String("sql-backend", "", "with --sql-path: the MySQL/MariaDB server, host:port or unix:/path")
	user := fs.String("sql-backend-user", "", "with --sql-path: service account the backend connections log in as")
	passwordFile := fs.String("sql-backend-password-file", "", "with --sql-path: file whose first line is the service account's password (empty: none); refused if group- or world-writable")
	conns := fs.Int("sql-backend-conns", 8, "with --sql-path: exact number of backend connections, shared by every request")
	usersFile := fs.String("sql-users", "", "with --sql-path: the MySQL proxy's users file: the accounts that may query, by their native hash (see scalestack mysqlproxy --help)")
	schema := fs.String("sql-schema", "", "with --sql-path: the schema (database) statements run in")
	queueTimeout := fs.Duration("sql-queue-timeout", 10*time.Second, "with --sql-path: how long a query waits for a backend connection before 503 (error 9001)")
	maxBody := fs.Int("sql-max-body", 1<<20, "with --sql-path: largest request body in bytes (413 beyond)")
	return func() (*sqlGateway, error) {
		if *path == "" {
			return nil, nil
		}
		if *addr == "" || *user == "" || *usersFile == "" {
			return nil, errors.New("--sql-path needs --sql-backend, --sql-backend-user and --sql-users")
		}
		if *conns < 1 || *maxBody < 1 {
			return nil, errors.New("--sql-backend-conns and --sql-max-body must be positive")
		}
		var password []byte
		if *passwordFile != "" {
			pw, err := mysqlproxy.ReadPasswordFile(*passwordFile)
			if err != nil {
				return nil, fmt.Errorf("--sql-backend-password-file: %w", err)
			}
			password = pw
		}
		users, err := mysqlproxy.LoadUsers(*usersFile)
		if err != nil {
			return nil, fmt.Errorf("--sql-users: %w", err)
		}
		baddr, err := conn.ParseAddr(*addr)
		if err != nil {
			return nil, fmt.Errorf("--sql-backend: %w", err)
		}
		p, err := mysqlproxy.New(mysqlproxy.Config{Backend: baddr, User: *user, Password: password, BackendConns: *conns,
			Users: users, QueueTimeout: *queueTimeout,
			Logf: func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) }})
		if err != nil {
			return nil, err
		}
		g := newSQLGateway(p, *schema, *maxBody)
		g.path = *path
		return g, nil
	}
}
