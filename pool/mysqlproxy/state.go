package mysqlproxy

import "strings"

// varID indexes the session variables the proxy tracks and replays.
type varID uint8

const (
	varAutocommit varID = iota
	varSQLMode
	varTimeZone
	varTxIsolation // tx_isolation / transaction_isolation / SET SESSION TRANSACTION ISOLATION LEVEL
	varTxReadOnly  // tx_read_only / transaction_read_only / SET SESSION TRANSACTION READ ONLY|WRITE
	varCharsetClient
	varCharsetResults
	varCharsetConnection
	varCollationConnection
	varWaitTimeout
	varInteractiveTimeout
	varNetReadTimeout
	varNetWriteTimeout
	varSQLSelectLimit
	varMaxStatementTime
	varMaxExecutionTime
	varGroupConcatMaxLen
	varInnodbLockWaitTimeout
	varLockWaitTimeout
	varLcTimeNames
	varForeignKeyChecks
	varUniqueChecks
	varSQLAutoIsNull
	varSQLSafeUpdates
	varSQLBigSelects
	varMaxJoinSize
	varSQLNotes
	varSQLWarnings
	varSQLQuoteShowCreate
	varDivPrecisionIncrement
	varDefaultStorageEngine
	varDefaultWeekFormat
	varBigTables
	varSQLBufferResult
	varMaxSortLength
	varSortBufferSize
	varJoinBufferSize
	varTmpTableSize
	varMaxHeapTableSize
	varOptimizerSwitch
	varOptimizerSearchDepth
	varLongQueryTime
	numVars
)

// varNames are the names replayed on backends (isolation and read-only are
// spelled per backend, see backendFlavor).
var varNames = [numVars]string{
	varAutocommit:            "autocommit",
	varSQLMode:               "sql_mode",
	varTimeZone:              "time_zone",
	varTxIsolation:           "tx_isolation",
	varTxReadOnly:            "tx_read_only",
	varCharsetClient:         "character_set_client",
	varCharsetResults:        "character_set_results",
	varCharsetConnection:     "character_set_connection",
	varCollationConnection:   "collation_connection",
	varWaitTimeout:           "wait_timeout",
	varInteractiveTimeout:    "interactive_timeout",
	varNetReadTimeout:        "net_read_timeout",
	varNetWriteTimeout:       "net_write_timeout",
	varSQLSelectLimit:        "sql_select_limit",
	varMaxStatementTime:      "max_statement_time",
	varMaxExecutionTime:      "max_execution_time",
	varGroupConcatMaxLen:     "group_concat_max_len",
	varInnodbLockWaitTimeout: "innodb_lock_wait_timeout",
	varLockWaitTimeout:       "lock_wait_timeout",
	varLcTimeNames:           "lc_time_names",
	varForeignKeyChecks:      "foreign_key_checks",
	varUniqueChecks:          "unique_checks",
	varSQLAutoIsNull:         "sql_auto_is_null",
	varSQLSafeUpdates:        "sql_safe_updates",
	varSQLBigSelects:         "sql_big_selects",
	varMaxJoinSize:           "max_join_size",
	varSQLNotes:              "sql_notes",
	varSQLWarnings:           "sql_warnings",
	varSQLQuoteShowCreate:    "sql_quote_show_create",
	varDivPrecisionIncrement: "div_precision_increment",
	varDefaultStorageEngine:  "default_storage_engine",
	varDefaultWeekFormat:     "default_week_format",
	varBigTables:             "big_tables",
	varSQLBufferResult:       "sql_buffer_result",
	varMaxSortLength:         "max_sort_length",
	varSortBufferSize:        "sort_buffer_size",
	varJoinBufferSize:        "join_buffer_size",
	varTmpTableSize:          "tmp_table_size",
	varMaxHeapTableSize:      "max_heap_table_size",
	varOptimizerSwitch:       "optimizer_switch",
	varOptimizerSearchDepth:  "optimizer_search_depth",
	varLongQueryTime:         "long_query_time",
}

// lookupVar maps a variable name as a client writes it to its slot.
func lookupVar(name []byte) (varID, bool) {
	switch {
	case equalFoldLower(name, "transaction_isolation"):
		return varTxIsolation, true
	case equalFoldLower(name, "transaction_read_only"):
		return varTxReadOnly, true
	case equalFoldLower(name, "sql_max_join_size"):
		return varMaxJoinSize, true
	case equalFoldLower(name, "storage_engine"):
		return varDefaultStorageEngine, true
	}
	for i, n := range varNames {
		if equalFoldLower(name, n) {
			return varID(i), true
		}
	}
	return 0, false
}

func equalFoldLower(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

func isCharsetVar(v varID) bool {
	return v >= varCharsetClient && v <= varCollationConnection
}

// multiStmtUnknown marks a backend whose COM_SET_OPTION state is not known.
const multiStmtUnknown = -1

// sessionState is the replayable state of a client session, and the state a
// backend connection is in; before a command runs, the backend is brought to
// the session's state.
type sessionState struct {
	schema string
	// names is the charset statement fragment replayed first ("NAMES
	// 'utf8mb4' COLLATE 'utf8mb4_general_ci'" or "CHARACTER SET latin1");
	// namesUnknown on a backend whose charset is not known.
	names string
	// vars is nil while every variable is at the server's default, which
	// is where almost every client session stays: the values take 0.7 KiB,
	// so a session allocates them only when it first sets one. Read and
	// write them through varValue and setVar.
	vars *varValues
	// multiStmts is 1 when multi-statements are on, 0 when off,
	// multiStmtUnknown when not known (backends only).
	multiStmts int8
}

// varValues holds each tracked variable's value as SQL text; "" is the
// server's default.
type varValues [numVars]string

const namesUnknown = "?"

func (s *sessionState) varValue(v varID) string {
	if s.vars == nil {
		return ""
	}
	return s.vars[v]
}

func (s *sessionState) setVar(v varID, value string) {
	if s.vars == nil {
		if value == "" {
			return
		}
		s.vars = new(varValues)
	}
	s.vars[v] = value
}

// sameVars reports whether s and b have every variable at the same value.
func (s *sessionState) sameVars(b *sessionState) bool {
	switch {
	case s.vars == b.vars:
		return true
	case s.vars == nil:
		return *b.vars == varValues{}
	case b.vars == nil:
		return *s.vars == varValues{}
	}
	return *s.vars == *b.vars
}

// copyVarsFrom gives s the variable values of from, reusing the array s
// has (a backend keeps one for its lifetime) and never sharing from's.
func (s *sessionState) copyVarsFrom(from *sessionState) {
	switch {
	case from.vars == nil:
		if s.vars != nil {
			*s.vars = varValues{}
		}
	case s.vars == nil:
		v := *from.vars
		s.vars = &v
	default:
		*s.vars = *from.vars
	}
}

// charsetDiffers reports whether the charset group must be replayed.
func (s *sessionState) charsetDiffers(b *sessionState) bool {
	if s.names != b.names {
		return true
	}
	for v := varCharsetClient; v <= varCollationConnection; v++ {
		if s.varValue(v) != b.varValue(v) {
			return true
		}
	}
	return false
}

// varsDiffer reports whether any SET is needed to bring b to s.
func (s *sessionState) varsDiffer(b *sessionState) bool {
	return s.names != b.names || !s.sameVars(b)
}

// backendFlavor says how a backend spells the version-dependent variables.
type backendFlavor struct {
	txIsolation string
	txReadOnly  string
}

func flavorFor(version string) backendFlavor {
	// MySQL 8.0 removed tx_isolation/tx_read_only; MariaDB and MySQL up to
	// 5.7 know the old names (MariaDB 11.1+ knows both).
	if !strings.Contains(version, "MariaDB") {
		if major := leadingInt(version); major >= 8 {
			return backendFlavor{txIsolation: "transaction_isolation", txReadOnly: "transaction_read_only"}
		}
	}
	return backendFlavor{txIsolation: "tx_isolation", txReadOnly: "tx_read_only"}
}

func leadingInt(s string) int {
	n := 0
	for i := 0; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

// appendReplaySET appends one SET statement bringing backend state b to
// session state s (only the differences), and reports whether anything was
// needed. The charset group goes first because SET NAMES resets its members.
func appendReplaySET(dst []byte, s, b *sessionState, fl *backendFlavor) ([]byte, bool) {
	start := len(dst)
	dst = append(dst, "SET "...)
	n := 0
	sep := func() {
		if n > 0 {
			dst = append(dst, ", "...)
		}
		n++
	}
	if s.charsetDiffers(b) {
		if s.names != "" {
			sep()
			dst = append(dst, s.names...)
		}
		for v := varCharsetClient; v <= varCollationConnection; v++ {
			if value := s.varValue(v); value != "" {
				sep()
				dst = appendAssign(dst, varNames[v], value)
			}
		}
	}
	for v := varID(0); v < numVars; v++ {
		if isCharsetVar(v) || s.varValue(v) == b.varValue(v) {
			continue
		}
		name := varNames[v]
		switch v {
		case varTxIsolation:
			name = fl.txIsolation
		case varTxReadOnly:
			name = fl.txReadOnly
		}
		sep()
		dst = appendAssign(dst, name, flooredValue(v, s.varValue(v)))
	}
	if n == 0 {
		return dst[:start], false
	}
	return dst, true
}

func appendAssign(dst []byte, name, value string) []byte {
	dst = append(dst, "@@session."...)
	dst = append(dst, name...)
	dst = append(dst, '=')
	if value == "" {
		return append(dst, "DEFAULT"...)
	}
	return append(dst, value...)
}

// Floors of the timeouts that could make the server drop a pooled
// connection: a client may set any value for its session (and reads it back,
// see session.answerSysVars), but a backend never gets less. An idle pooled
// backend is pinged every Config.HealthInterval (2 s by default) and one a
// session holds for its diagnostics may sit idle as long as that client
// does, so wait_timeout and interactive_timeout get an hour; net_read_timeout
// and net_write_timeout get the server's defaults (30 and 60 s), below which
// a slow client or a LOAD DATA LOCAL transfer would break the backend.
var varFloors = [numVars]struct {
	min  uint64
	text string
}{
	varWaitTimeout:        {3600, "3600"},
	varInteractiveTimeout: {3600, "3600"},
	varNetReadTimeout:     {30, "30"},
	varNetWriteTimeout:    {60, "60"},
}

// belowFloor reports whether value (SQL text, "" for DEFAULT), set on
// variable v, would give a backend less than v's floor. Decimal integers
// are compared (a negative one is clamped by the server to its minimum, 1);
// hexadecimal and bit literals count as below; strings, decimals with a
// fraction and words are left alone, since the server rejects them for
// these variables.
func belowFloor(v varID, value string) bool {
	floor := varFloors[v].min
	if floor == 0 || value == "" {
		return false
	}
	if value[0] == '-' {
		return true
	}
	if value[0] == '+' {
		value = value[1:]
	}
	if len(value) > 1 && value[0] == '0' && (value[1] == 'x' || value[1] == 'X' || value[1] == 'b' || value[1] == 'B') {
		return true
	}
	if len(value) > 1 && value[1] == '\'' && (value[0]|0x20 == 'x' || value[0]|0x20 == 'b') {
		return true
	}
	var n uint64
	for i := 0; i < len(value); i++ {
		c := value[i]
		if !isDigit(c) {
			return false
		}
		if i >= 18 {
			return false // far above any floor
		}
		n = n*10 + uint64(c-'0')
	}
	return n < floor
}

// flooredValue is the value a backend is given for v: value, or v's floor
// when value is below it.
func flooredValue(v varID, value string) string {
	if belowFloor(v, value) {
		return varFloors[v].text
	}
	return value
}

// flooredSET returns the client's SET statement with every value below its
// variable's floor replaced by the floor, and whether anything was
// replaced. The plan's assignments index sql; the rest of the text
// (comments, SET NAMES, the order) is kept, so the server runs the same
// statement apart from those values.
func flooredSET(dst, sql []byte, plan *setPlan) ([]byte, bool) {
	from := 0
	changed := false
	for i := 0; i < plan.n; i++ {
		a := &plan.assigns[i]
		if a.value == nil || varFloors[a.v].min == 0 || !belowFloor(a.v, string(a.value)) {
			continue
		}
		dst = append(dst, sql[from:a.at]...)
		dst = append(dst, varFloors[a.v].text...)
		from = a.at + len(a.value)
		changed = true
	}
	return append(dst, sql[from:]...), changed
}

// autocommitOff reports whether a tracked autocommit value turns it off.
func autocommitOff(v string) bool {
	v = strings.Trim(v, "'\"")
	return v == "0" || strings.EqualFold(v, "OFF") || strings.EqualFold(v, "FALSE")
}

// setResult says what a SET statement does to session state.
type setResult uint8

const (
	setTracked setResult = iota // every assignment is tracked (or global)
	setUserVar                  // assigns a user variable: pin
	setUnknown                  // something the proxy cannot replay: pin
)

const maxSetAssigns = 32

type setAssign struct {
	v     varID
	value []byte // SQL text; nil for DEFAULT
	at    int    // offset of value in the statement (assignments of parseSET)
}

// setPlan holds a parsed SET; its slices alias the query text and are
// applied (copied into strings) only once the server accepted the statement.
type setPlan struct {
	n        int
	assigns  [maxSetAssigns]setAssign
	names    []byte // non-nil when the charset base changes
	namesDef bool   // SET NAMES DEFAULT
}

// parseSET parses the statement after its SET keyword. It allocates nothing.
func parseSET(sql []byte, noBackslash bool, plan *setPlan) setResult {
	plan.n = 0
	plan.names = nil
	plan.namesDef = false
	lx := lexer{src: sql, noBackslash: noBackslash}
	t := lx.next()
	if !lx.is(t, "SET") {
		return setUnknown
	}
	global := false
	for {
		t = lx.next()
		scoped := false
		switch {
		case lx.is(t, "SESSION") || lx.is(t, "LOCAL"):
			scoped = true
			t = lx.next()
		case lx.is(t, "GLOBAL"):
			global = true
			t = lx.next()
		}
		var name []byte
		switch {
		case t.kind == tokUserVar:
			return setUserVar
		case t.kind == tokSysVar:
			name = lx.text(t)[2:]
			switch {
			case len(name) > 8 && equalFoldLower(name[:8], "session."):
				name = name[8:]
			case len(name) > 6 && equalFoldLower(name[:6], "local."):
				name = name[6:]
			case len(name) > 7 && equalFoldLower(name[:7], "global."):
				global = true
				name = name[7:]
			}
		case lx.is(t, "NAMES"):
			if !parseNames(&lx, plan, false) {
				return setUnknown
			}
			goto next
		case lx.is(t, "CHARACTER") || lx.is(t, "CHARSET"):
			if lx.is(t, "CHARACTER") && !lx.is(lx.next(), "SET") {
				return setUnknown
			}
			if !parseNames(&lx, plan, true) {
				return setUnknown
			}
			goto next
		case lx.is(t, "TRANSACTION"):
			if !scoped || plan.n > 0 {
				// Without SESSION it only shapes the next transaction,
				// which may run on another backend.
				return setUnknown
			}
			return parseSessionTransaction(&lx, plan)
		case t.kind == tokWord || t.kind == tokQuoted:
			name = lx.text(t)
		default:
			return setUnknown
		}
		{
			eq := lx.next()
			if !lx.isPunct(eq, '=') && !(eq.kind == tokPunct && eq.end-eq.start == 2) {
				return setUnknown
			}
			val, ok := parseSetValue(&lx)
			if !ok {
				return setUnknown
			}
			if global {
				// Global changes do not touch this session's state; a
				// statement mixing scopes is left to pinning.
				if plan.n > 0 {
					return setUnknown
				}
				goto next
			}
			v, known := lookupVar(name)
			if !known || plan.n == maxSetAssigns {
				return setUnknown
			}
			plan.assigns[plan.n] = setAssign{v: v, value: val, at: lx.pos - len(val)}
			plan.n++
		}
	next:
		t = lx.next()
		switch {
		case lx.isPunct(t, ','):
			if global {
				return setUnknown
			}
			continue
		case t.kind == tokEnd:
			return setTracked
		case lx.isPunct(t, ';'):
			if lx.next().kind != tokEnd {
				return setUnknown
			}
			return setTracked
		}
		return setUnknown
	}
}

// parseSetValue reads a single-token value: a (signed) number, a string, or
// a word such as ON, OFF or DEFAULT (returned as nil).
func parseSetValue(lx *lexer) ([]byte, bool) {
	t := lx.next()
	start := t.start
	if lx.isPunct(t, '-') || lx.isPunct(t, '+') {
		t = lx.next()
		if t.kind != tokNumber {
			return nil, false
		}
	}
	switch t.kind {
	case tokNumber, tokString:
	case tokWord:
		if lx.is(t, "DEFAULT") {
			return nil, lookAheadEndOfValue(lx)
		}
	default:
		return nil, false
	}
	if !lookAheadEndOfValue(lx) {
		return nil, false
	}
	return lx.src[start:t.end], true
}

func lookAheadEndOfValue(lx *lexer) bool {
	save := *lx
	t := lx.next()
	*lx = save
	return t.kind == tokEnd || lx.isPunct(t, ',') || lx.isPunct(t, ';')
}

// parseNames handles NAMES x [COLLATE y] and CHARACTER SET x.
func parseNames(lx *lexer, plan *setPlan, charset bool) bool {
	start := lx.pos
	t := lx.next()
	switch t.kind {
	case tokWord, tokString, tokQuoted:
	default:
		return false
	}
	if lx.is(t, "DEFAULT") {
		plan.namesDef = true
		plan.names = nil
		return lookAheadEndOfValue(lx)
	}
	end := t.end
	if !charset {
		save := *lx
		if c := lx.next(); lx.is(c, "COLLATE") {
			v := lx.next()
			if v.kind != tokWord && v.kind != tokString && v.kind != tokQuoted {
				return false
			}
			end = v.end
		} else {
			*lx = save
		}
	}
	if !lookAheadEndOfValue(lx) {
		return false
	}
	// Keep the keyword with the value so the replay is the same statement
	// (this copies, but only for SET NAMES, never per ordinary statement).
	plan.namesDef = false
	if charset {
		plan.names = append(plan.names[:0:0], "CHARACTER SET "...)
		plan.names = append(plan.names, trimSpaceBytes(lx.src[start:end])...)
	} else {
		plan.names = append(plan.names[:0:0], "NAMES "...)
		plan.names = append(plan.names, trimSpaceBytes(lx.src[start:end])...)
	}
	return true
}

func trimSpaceBytes(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// isolation level values replayed through tx_isolation.
var isolationValues = [...]string{"'READ-UNCOMMITTED'", "'READ-COMMITTED'", "'REPEATABLE-READ'", "'SERIALIZABLE'"}

// parseSessionTransaction handles SET SESSION TRANSACTION characteristics.
func parseSessionTransaction(lx *lexer, plan *setPlan) setResult {
	for {
		t := lx.next()
		switch {
		case lx.is(t, "ISOLATION"):
			if !lx.is(lx.next(), "LEVEL") {
				return setUnknown
			}
			a, b := lx.next(), token{}
			var val string
			switch {
			case lx.is(a, "SERIALIZABLE"):
				val = isolationValues[3]
			case lx.is(a, "REPEATABLE"):
				if b = lx.next(); !lx.is(b, "READ") {
					return setUnknown
				}
				val = isolationValues[2]
			case lx.is(a, "READ"):
				b = lx.next()
				switch {
				case lx.is(b, "COMMITTED"):
					val = isolationValues[1]
				case lx.is(b, "UNCOMMITTED"):
					val = isolationValues[0]
				default:
					return setUnknown
				}
			default:
				return setUnknown
			}
			plan.assigns[plan.n] = setAssign{v: varTxIsolation, value: []byte(val)}
			plan.n++
		case lx.is(t, "READ"):
			b := lx.next()
			val := "0"
			switch {
			case lx.is(b, "ONLY"):
				val = "1"
			case lx.is(b, "WRITE"):
			default:
				return setUnknown
			}
			plan.assigns[plan.n] = setAssign{v: varTxReadOnly, value: []byte(val)}
			plan.n++
		default:
			return setUnknown
		}
		t = lx.next()
		switch {
		case lx.isPunct(t, ',') && plan.n < 2:
			continue
		case t.kind == tokEnd:
			return setTracked
		case lx.isPunct(t, ';') && lx.next().kind == tokEnd:
			return setTracked
		}
		return setUnknown
	}
}

// apply records a successful SET in st.
func (p *setPlan) apply(st *sessionState) {
	if p.names != nil {
		st.names = string(p.names)
		for v := varCharsetClient; v <= varCollationConnection; v++ {
			st.setVar(v, "")
		}
	} else if p.namesDef {
		st.names = "NAMES DEFAULT"
		for v := varCharsetClient; v <= varCollationConnection; v++ {
			st.setVar(v, "")
		}
	}
	for i := 0; i < p.n; i++ {
		a := p.assigns[i]
		if a.value == nil {
			st.setVar(a.v, "")
		} else if st.varValue(a.v) != string(a.value) {
			st.setVar(a.v, string(a.value))
		}
	}
}
