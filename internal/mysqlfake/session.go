package mysqlfake

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/scalestack/scalestack/mysqlwire"
)

// builtin answers what clients and the proxy send on their own: SET (the
// proxy's state replay among them), USE, BEGIN/START TRANSACTION, COMMIT,
// ROLLBACK, DO LAST_INSERT_ID(n) and simple SELECTs of system variables,
// user variables, DATABASE(), CONNECTION_ID(), LAST_INSERT_ID(), USER(),
// VERSION(), literals and ?. ok is false
// when the statement is none of these. With q.Preparing nothing changes.
func (c *Conn) builtin(q Query) (Response, bool) {
	word, rest := firstWord(q.SQL)
	switch strings.ToUpper(word) {
	case "SET":
		assigns, err := parseSet(rest)
		if err != nil {
			return syntaxError(q), true
		}
		if q.Preparing {
			return OK(), true
		}
		return Response{OK: &OKResult{SessionState: c.applySet(assigns)}}, true
	case "USE":
		schema := unquote(strings.TrimSpace(rest))
		if !c.s.knownSchema(schema) {
			return Fail(mysqlwire.ErBadDBError, "42000", fmt.Sprintf("Unknown database '%s'", schema)), true
		}
		if !q.Preparing {
			c.update(func(st *State) { st.Schema = schema })
		}
		return Response{OK: &OKResult{SessionState: []SessionChange{SchemaChange(schema)}}}, true
	case "BEGIN", "START":
		if strings.ToUpper(word) == "START" && !strings.HasPrefix(strings.ToUpper(strings.TrimSpace(rest)), "TRANSACTION") {
			return Response{}, false
		}
		if !q.Preparing {
			c.update(func(st *State) { st.InTrans = true })
		}
		return OK(), true
	case "COMMIT", "ROLLBACK":
		if !q.Preparing {
			c.update(func(st *State) { st.InTrans = false })
		}
		return OK(), true
	case "SELECT":
		return c.selectBuiltin(q, rest)
	case "DO":
		// DO LAST_INSERT_ID(n), which the proxy sends to put a session's
		// value back.
		arg := strings.TrimSpace(rest)
		if u := strings.ToUpper(arg); !strings.HasPrefix(u, "LAST_INSERT_ID(") || !strings.HasSuffix(u, ")") {
			return Response{}, false
		}
		n, err := strconv.ParseUint(strings.TrimSpace(arg[len("LAST_INSERT_ID("):len(arg)-1]), 10, 64)
		if err != nil {
			return syntaxError(q), true
		}
		if !q.Preparing {
			c.update(func(st *State) { st.LastInsertID = n })
		}
		return OK(), true
	}
	return Response{}, false
}

func firstWord(s string) (word, rest string) {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " \t\r\n")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// selectBuiltin answers SELECT item, item... when every item is one the
// double knows.
func (c *Conn) selectBuiltin(q Query, list string) (Response, bool) {
	items, err := splitTop(list)
	if err != nil || len(items) == 0 {
		return Response{}, false
	}
	st := c.State()
	row := make([]any, len(items))
	names := make([]string, len(items))
	param := 0
	for i, item := range items {
		names[i] = item
		upper := strings.ToUpper(item)
		switch {
		case strings.HasPrefix(item, "@@"):
			name := sysVarName(item[2:])
			v, ok := c.sysVar(&st, name)
			if !ok {
				return Fail(erUnknownSystemVariable, "HY000", fmt.Sprintf("Unknown system variable '%s'", name)), true
			}
			row[i] = v
		case strings.HasPrefix(item, "@"):
			if v, ok := st.UserVars[strings.ToLower(unquote(item[1:]))]; ok {
				row[i] = v
			}
		case upper == "DATABASE()" || upper == "SCHEMA()":
			if st.Schema != "" {
				row[i] = st.Schema
			}
		case upper == "CONNECTION_ID()":
			row[i] = int64(c.id)
		case upper == "LAST_INSERT_ID()":
			row[i] = st.LastInsertID
		case upper == "USER()" || upper == "CURRENT_USER()":
			row[i] = st.User + "@localhost"
		case upper == "VERSION()":
			row[i] = c.version()
		case item == "?":
			if param < len(q.Params) {
				row[i] = q.Params[param]
			}
			param++
		case isQuoted(item):
			row[i] = unquote(item)
		default:
			n, err := strconv.ParseInt(item, 10, 64)
			if err != nil {
				return Response{}, false
			}
			row[i] = n
		}
	}
	return Rows(names, row), true
}

// version is what SELECT @@version shows (without the 5.5.5- prefix
// MariaDB puts in its greeting for old clients).
func (c *Conn) version() string {
	return strings.TrimPrefix(c.s.cfg.Version, "5.5.5-")
}

// sysVar returns a session variable's value: what SET made it, or the
// server's default.
func (c *Conn) sysVar(st *State, name string) (string, bool) {
	switch name {
	case "autocommit":
		return boolText(st.Autocommit), true
	case "in_transaction":
		return boolText(st.InTrans), true
	case "version":
		return c.version(), true
	case "max_allowed_packet":
		return strconv.Itoa(c.s.cfg.MaxAllowedPacket), true
	case "max_prepared_stmt_count":
		return strconv.Itoa(c.s.cfg.MaxPreparedStmts), true
	}
	if v, ok := st.Vars[name]; ok {
		return v, true
	}
	v, ok := sysVarDefaults[name]
	return v, ok
}

func boolText(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// sysVarDefaults are MariaDB 10.11's defaults for the variables clients and
// the proxy read or replay.
var sysVarDefaults = map[string]string{
	"version_comment":                "mariadb.org binary distribution (mysqlfake)",
	"wait_timeout":                   "28800",
	"interactive_timeout":            "28800",
	"net_read_timeout":               "30",
	"net_write_timeout":              "60",
	"tx_isolation":                   "REPEATABLE-READ",
	"transaction_isolation":          "REPEATABLE-READ",
	"tx_read_only":                   "0",
	"transaction_read_only":          "0",
	"sql_mode":                       "STRICT_TRANS_TABLES,ERROR_FOR_DIVISION_BY_ZERO,NO_AUTO_CREATE_USER,NO_ENGINE_SUBSTITUTION",
	"character_set_client":           "utf8mb4",
	"character_set_connection":       "utf8mb4",
	"character_set_results":          "utf8mb4",
	"character_set_server":           "utf8mb4",
	"collation_connection":           "utf8mb4_general_ci",
	"time_zone":                      "SYSTEM",
	"system_time_zone":               "UTC",
	"lower_case_table_names":         "0",
	"server_id":                      "1",
	"sql_select_limit":               "18446744073709551615",
	"session_track_system_variables": "autocommit,character_set_client,character_set_connection,character_set_results,time_zone",
}

// sysVarName strips a scope from a variable reference: session.x, local.x,
// global.x → x (lower-cased).
func sysVarName(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, scope := range []string{"session.", "local.", "global."} {
		s = strings.TrimPrefix(s, scope)
	}
	return unquote(s)
}

// assignment is one item of a SET statement.
type assignment struct {
	user  bool   // @name rather than a system variable
	name  string // lower-case
	value string // unquoted; empty with isDefault
	isDef bool   // DEFAULT
}

var errSetSyntax = errors.New("mysqlfake: SET syntax")

// parseSet parses what follows SET: assignments to system variables (with
// an optional @@, scope keyword or scope prefix) and user variables, NAMES,
// CHARACTER SET and [SESSION] TRANSACTION characteristics.
func parseSet(text string) ([]assignment, error) {
	items, err := splitTop(text)
	if err != nil || len(items) == 0 {
		return nil, errSetSyntax
	}
	upper := strings.ToUpper(items[0])
	for _, scope := range []string{"SESSION ", "LOCAL ", "GLOBAL "} {
		if strings.HasPrefix(upper, scope+"TRANSACTION ") {
			items[0] = strings.TrimSpace(items[0][len(scope):])
			upper = strings.ToUpper(items[0])
		}
	}
	if strings.HasPrefix(upper, "TRANSACTION ") {
		items[0] = strings.TrimSpace(items[0][len("TRANSACTION "):])
		return parseTransaction(items)
	}
	var out []assignment
	for _, item := range items {
		a, err := parseAssignment(item)
		if err != nil {
			return nil, err
		}
		out = append(out, a...)
	}
	return out, nil
}

func parseAssignment(item string) ([]assignment, error) {
	upper := strings.ToUpper(item)
	switch {
	case strings.HasPrefix(upper, "NAMES "):
		words := strings.Fields(item[len("NAMES "):])
		if len(words) != 1 && (len(words) != 3 || !strings.EqualFold(words[1], "COLLATE")) {
			return nil, errSetSyntax
		}
		cs := strings.ToLower(unquote(words[0]))
		if cs == "default" {
			return []assignment{{name: "character_set_client", isDef: true}, {name: "character_set_connection", isDef: true},
				{name: "character_set_results", isDef: true}, {name: "collation_connection", isDef: true}}, nil
		}
		out := []assignment{{name: "character_set_client", value: cs}, {name: "character_set_connection", value: cs},
			{name: "character_set_results", value: cs}}
		if len(words) == 3 {
			out = append(out, assignment{name: "collation_connection", value: strings.ToLower(unquote(words[2]))})
		}
		return out, nil
	case strings.HasPrefix(upper, "CHARACTER SET ") || strings.HasPrefix(upper, "CHARSET "):
		cs := strings.ToLower(unquote(strings.TrimSpace(item[strings.Index(upper, "SET ")+4:])))
		if strings.HasPrefix(upper, "CHARSET ") {
			cs = strings.ToLower(unquote(strings.TrimSpace(item[len("CHARSET "):])))
		}
		if cs == "" || strings.ContainsAny(cs, " \t") {
			return nil, errSetSyntax
		}
		return []assignment{{name: "character_set_client", value: cs}, {name: "character_set_results", value: cs}}, nil
	}
	eq := strings.Index(item, "=")
	if eq <= 0 {
		return nil, errSetSyntax
	}
	lhs := strings.TrimSpace(strings.TrimSuffix(item[:eq], ":")) // = or :=
	rhs := strings.TrimSpace(item[eq+1:])
	if lhs == "" || rhs == "" {
		return nil, errSetSyntax
	}
	a := assignment{}
	switch {
	case strings.HasPrefix(lhs, "@@"):
		a.name = sysVarName(lhs[2:])
	case strings.HasPrefix(lhs, "@"):
		a.user, a.name = true, strings.ToLower(unquote(lhs[1:]))
	default:
		w, rest := firstWord(lhs)
		switch strings.ToUpper(w) {
		case "SESSION", "LOCAL", "GLOBAL":
			lhs = rest
		}
		a.name = sysVarName(lhs)
	}
	if a.name == "" || strings.ContainsAny(a.name, " \t") {
		return nil, errSetSyntax
	}
	if !a.user && strings.EqualFold(rhs, "DEFAULT") {
		a.isDef = true
	} else {
		a.value = unquote(rhs)
	}
	return []assignment{a}, nil
}

// parseTransaction handles ISOLATION LEVEL x and READ ONLY/WRITE.
func parseTransaction(items []string) ([]assignment, error) {
	var out []assignment
	for _, item := range items {
		words := strings.Fields(strings.ToUpper(item))
		switch {
		case len(words) >= 3 && words[0] == "ISOLATION" && words[1] == "LEVEL":
			out = append(out, assignment{name: "tx_isolation", value: strings.Join(words[2:], "-")})
		case len(words) == 2 && words[0] == "READ" && (words[1] == "ONLY" || words[1] == "WRITE"):
			out = append(out, assignment{name: "tx_read_only", value: boolText(words[1] == "ONLY")})
		default:
			return nil, errSetSyntax
		}
	}
	return out, nil
}

// applySet records assignments and returns the session tracking entries a
// server sends for them.
func (c *Conn) applySet(assigns []assignment) []SessionChange {
	var changes []SessionChange
	c.update(func(st *State) {
		for _, a := range assigns {
			switch {
			case a.user:
				st.UserVars[a.name] = a.value
				continue
			case a.name == "autocommit":
				on := a.isDef || isTrue(a.value)
				if on {
					st.InTrans = false // turning autocommit on commits
				}
				st.Autocommit = on
				changes = append(changes, SysVarChange(a.name, map[bool]string{true: "ON", false: "OFF"}[on]))
				continue
			case a.isDef:
				delete(st.Vars, a.name)
			default:
				st.Vars[a.name] = a.value
			}
			changes = append(changes, SysVarChange(a.name, a.value))
		}
	})
	return changes
}

func isTrue(v string) bool {
	switch strings.ToUpper(v) {
	case "1", "ON", "TRUE":
		return true
	}
	return false
}

func isQuoted(s string) bool {
	return len(s) >= 2 && (s[0] == '\'' || s[0] == '"' || s[0] == '`') && s[len(s)-1] == s[0]
}

// unquote strips one level of quotes (”, "" or “) and undoes doubled
// quotes and backslash escapes inside.
func unquote(s string) string {
	if !isQuoted(s) {
		return s
	}
	q := s[0]
	body := s[1 : len(s)-1]
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		ch := body[i]
		if ch == '\\' && q != '`' && i+1 < len(body) {
			i++
			b.WriteByte(body[i])
			continue
		}
		if ch == q && i+1 < len(body) && body[i+1] == q {
			i++
		}
		b.WriteByte(ch)
	}
	return b.String()
}

// scan walks sql outside quotes and comments, calling f for every byte that
// is code (with the parenthesis depth). It fails on an unterminated quote
// or comment.
func scan(sql string, f func(i int, depth int)) error {
	depth := 0
	for i := 0; i < len(sql); i++ {
		ch := sql[i]
		switch {
		case ch == '\'' || ch == '"' || ch == '`':
			j := i + 1
			for ; j < len(sql); j++ {
				if sql[j] == '\\' && ch != '`' {
					j++
					continue
				}
				if sql[j] == ch {
					if j+1 < len(sql) && sql[j+1] == ch {
						j++
						continue
					}
					break
				}
			}
			if j >= len(sql) {
				return errSetSyntax
			}
			i = j
		case ch == '#' || (ch == '-' && strings.HasPrefix(sql[i:], "-- ")):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case ch == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return errSetSyntax
			}
			i += end + 3
		case ch == '(':
			depth++
			f(i, depth)
		case ch == ')':
			depth--
			if depth < 0 {
				return errSetSyntax
			}
			f(i, depth)
		default:
			f(i, depth)
		}
	}
	if depth != 0 {
		return errSetSyntax
	}
	return nil
}

// countParams counts the ? placeholders of a statement to prepare.
func countParams(sql string) (int, error) {
	n := 0
	err := scan(sql, func(i, _ int) {
		if sql[i] == '?' {
			n++
		}
	})
	return n, err
}

// splitTop splits a list at the commas outside quotes, comments and
// parentheses, trimming each item.
func splitTop(s string) ([]string, error) {
	var out []string
	start := 0
	err := scan(s, func(i, depth int) {
		if s[i] == ',' && depth == 0 {
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	})
	if err != nil {
		return nil, err
	}
	out = append(out, strings.TrimSpace(s[start:]))
	for _, item := range out {
		if item == "" {
			return nil, errSetSyntax
		}
	}
	return out, nil
}
