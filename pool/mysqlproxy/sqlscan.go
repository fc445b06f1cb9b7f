package mysqlproxy

import (
	"bytes"
	"strconv"
)

// This file holds the small SQL lexer the proxy uses to decide what a
// COM_QUERY does to session state. It is not a parser: it splits text into
// tokens (skipping comments, honouring quoting) and recognises the handful of
// statement shapes that matter for multiplexing. Anything it does not
// understand is reported as such so the caller can pin, never guessed.

type tokKind uint8

const (
	tokEnd tokKind = iota
	tokWord
	tokString  // '...' or "..." (text without the quotes in tok.text's raw form)
	tokQuoted  // `...` identifier
	tokNumber  // digits, with optional fraction/exponent
	tokUserVar // @name, @'name', @`name`
	tokSysVar  // @@name, @@session.name, ...
	tokPunct   // one character, or ":="
)

type token struct {
	kind  tokKind
	start int // offset of the token in the source
	end   int
}

// lexer walks SQL text. noBackslash mirrors NO_BACKSLASH_ESCAPES: with it a
// backslash inside a string is an ordinary character.
type lexer struct {
	src         []byte
	pos         int
	noBackslash bool
	inExecCmt   bool // inside /*! ... */, whose body is code
	bad         bool // an unterminated string or comment was seen
	sawComment  bool // a comment was skipped (the text is not empty)
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isIdentChar(c byte) bool {
	return c == '_' || c == '$' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skipSpace skips white space and comments.
func (lx *lexer) skipSpace() {
	s := lx.src
	for lx.pos < len(s) {
		c := s[lx.pos]
		switch {
		case isSpace(c):
			lx.pos++
		case c == '#':
			lx.sawComment = true
			lx.skipLine()
		case c == '-' && lx.pos+2 <= len(s) && lx.pos+1 < len(s) && s[lx.pos+1] == '-' &&
			(lx.pos+2 == len(s) || isSpace(s[lx.pos+2]) || s[lx.pos+2] < 0x20):
			lx.sawComment = true
			lx.skipLine()
		case c == '/' && lx.pos+1 < len(s) && s[lx.pos+1] == '*':
			lx.sawComment = true
			p := lx.pos + 2
			// /*! and /*M! comments are executable: their body is code.
			if p < len(s) && s[p] == 'M' && p+1 < len(s) && s[p+1] == '!' {
				p++
			}
			if p < len(s) && s[p] == '!' && !lx.inExecCmt {
				p++
				for p < len(s) && isDigit(s[p]) {
					p++
				}
				lx.pos = p
				lx.inExecCmt = true
				continue
			}
			end := indexPair(s, lx.pos+2, '*', '/')
			if end < 0 {
				lx.bad = true
				lx.pos = len(s)
				return
			}
			lx.pos = end + 2
		case c == '*' && lx.inExecCmt && lx.pos+1 < len(s) && s[lx.pos+1] == '/':
			lx.inExecCmt = false
			lx.pos += 2
		default:
			return
		}
	}
}

func indexPair(s []byte, from int, a, b byte) int {
	for i := from; i+1 < len(s); i++ {
		if s[i] == a && s[i+1] == b {
			return i
		}
	}
	return -1
}

func (lx *lexer) skipLine() {
	for lx.pos < len(lx.src) && lx.src[lx.pos] != '\n' {
		lx.pos++
	}
}

// skipQuoted moves past a quoted run that starts at lx.pos with quote q.
func (lx *lexer) skipQuoted(q byte) {
	s := lx.src
	i := lx.pos + 1
	for i < len(s) {
		c := s[i]
		if c == '\\' && q != '`' && !lx.noBackslash {
			i += 2
			continue
		}
		if c == q {
			if i+1 < len(s) && s[i+1] == q { // doubled quote
				i += 2
				continue
			}
			lx.pos = i + 1
			return
		}
		i++
	}
	lx.bad = true
	lx.pos = len(s)
}

// unquote is the text between the quotes of a string or quoted-identifier
// token. ok is false for an unterminated one (the lexer ran to the end of
// the input) and for an introducer or hex literal such as _utf8'x', whose
// text does not start with its quote: the caller leaves such statements to
// the server, which reports the error.
func (lx *lexer) unquote(t token) (inner []byte, ok bool) {
	q := lx.text(t)
	if lx.bad || len(q) < 2 || (q[0] != '\'' && q[0] != '"' && q[0] != '`') || q[len(q)-1] != q[0] {
		return nil, false
	}
	return q[1 : len(q)-1], true
}

// next returns the next token.
func (lx *lexer) next() token {
	lx.skipSpace()
	s := lx.src
	if lx.pos >= len(s) {
		return token{kind: tokEnd, start: len(s), end: len(s)}
	}
	start := lx.pos
	c := s[start]
	switch {
	case c == '\'' || c == '"':
		lx.skipQuoted(c)
		return token{kind: tokString, start: start, end: lx.pos}
	case c == '`':
		lx.skipQuoted(c)
		return token{kind: tokQuoted, start: start, end: lx.pos}
	case c == '@':
		if start+1 < len(s) && s[start+1] == '@' {
			lx.pos = start + 2
			for lx.pos < len(s) && (isIdentChar(s[lx.pos]) || s[lx.pos] == '.') {
				lx.pos++
			}
			return token{kind: tokSysVar, start: start, end: lx.pos}
		}
		lx.pos = start + 1
		if lx.pos < len(s) && (s[lx.pos] == '\'' || s[lx.pos] == '"' || s[lx.pos] == '`') {
			lx.skipQuoted(s[lx.pos])
		} else {
			for lx.pos < len(s) && (isIdentChar(s[lx.pos]) || s[lx.pos] == '.') {
				lx.pos++
			}
		}
		return token{kind: tokUserVar, start: start, end: lx.pos}
	case isDigit(c) || (c == '.' && start+1 < len(s) && isDigit(s[start+1])):
		lx.pos++
		for lx.pos < len(s) && (isIdentChar(s[lx.pos]) || s[lx.pos] == '.') {
			lx.pos++
		}
		return token{kind: tokNumber, start: start, end: lx.pos}
	case isIdentChar(c):
		for lx.pos < len(s) && isIdentChar(s[lx.pos]) {
			lx.pos++
		}
		// A word followed at once by a quote is a charset introducer
		// (_utf8'x') or a hex/bit literal (x'0A'): one value token.
		if lx.pos < len(s) && s[lx.pos] == '\'' {
			lx.skipQuoted('\'')
			return token{kind: tokString, start: start, end: lx.pos}
		}
		return token{kind: tokWord, start: start, end: lx.pos}
	case c == ':' && start+1 < len(s) && s[start+1] == '=':
		lx.pos += 2
		return token{kind: tokPunct, start: start, end: lx.pos}
	}
	lx.pos++
	return token{kind: tokPunct, start: start, end: lx.pos}
}

func (lx *lexer) text(t token) []byte { return lx.src[t.start:t.end] }

// is reports whether t is the word w (w upper case, ASCII).
func (lx *lexer) is(t token, w string) bool {
	if t.kind != tokWord || t.end-t.start != len(w) {
		return false
	}
	return equalFoldASCII(lx.src[t.start:t.end], w)
}

func (lx *lexer) isPunct(t token, c byte) bool {
	return t.kind == tokPunct && t.end-t.start == 1 && lx.src[t.start] == c
}

// equalFoldASCII compares b with the upper-case ASCII string w, ignoring case.
func equalFoldASCII(b []byte, w string) bool {
	if len(b) != len(w) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c >= 'a' && c <= 'z' {
			c -= 'a' - 'A'
		}
		if c != w[i] {
			return false
		}
	}
	return true
}

// stmtKind is the first-keyword class of a statement.
type stmtKind uint8

const (
	stmtOther stmtKind = iota
	stmtEmpty
	stmtSelect
	stmtSet
	stmtUse
	stmtKill
	stmtLock         // LOCK TABLE(S)
	stmtUnlock       // UNLOCK TABLES
	stmtFlushLock    // FLUSH TABLES ... WITH READ LOCK
	stmtPrepare      // text PREPARE
	stmtLoadLocal    // LOAD DATA/XML LOCAL INFILE
	stmtCreateTemp   // CREATE TEMPORARY TABLE
	stmtConnectionID // SELECT CONNECTION_ID()
	stmtLastInsertID // SELECT LAST_INSERT_ID()
	stmtReadSysVars  // SELECT @@wait_timeout, ... (only variables with a floor, see varFloors)
	stmtCall         // CALL
	stmtExecute      // EXECUTE (of a text PREPARE, or IMMEDIATE)
	stmtShowSSL      // SHOW [SESSION] STATUS LIKE 'Ssl...': the client's own TLS
)

// Statement feature flags found anywhere in the text.
const (
	featUserVar       = 1 << iota // @x reference or := assignment
	featGetLock                   // GET_LOCK(
	featCalcFoundRows             // SQL_CALC_FOUND_ROWS
	featMulti                     // more than one statement
	featTempTable                 // CREATE TEMPORARY TABLE somewhere
	featBad                       // unterminated string or comment
	featLockTables                // LOCK TABLES in a later statement
	featUnlock                    // UNLOCK TABLES in a later statement
	featPrepare                   // text PREPARE in a later statement
	featSet                       // SET in a later statement
	featUse                       // USE in a later statement
	featUnlisted                  // a statement whose kind is not in listedStatements
	featDiag                      // reads diagnostics: SHOW WARNINGS/ERRORS, GET DIAGNOSTICS, @@warning_count, @@error_count
	featLastIDRead                // reads LAST_INSERT_ID(): the function (or @@last_insert_id, @@identity), CALL, EXECUTE
	featLastIDWrite               // may change it: INSERT, REPLACE, LOAD, LAST_INSERT_ID(expr), CALL, EXECUTE
	featConnID                    // calls CONNECTION_ID() (rewriteConnectionID)
)

// featurePins are the features that, found anywhere in a statement's text,
// leave state on the backend that the proxy does not replay, so the session
// keeps its backend.
var featurePins = [...]struct {
	feature uint32
	reason  PinReason
}{
	{featUserVar, PinUserVariable},
	{featGetLock, PinGetLock},
	{featCalcFoundRows, PinCalcFoundRows},
	{featTempTable, PinTempTable},
	{featLockTables, PinLockTables},
	{featPrepare, PinTextPrepare},
}

// queryInfo is what scanQuery learns about a COM_QUERY.
type queryInfo struct {
	kind  stmtKind
	feats uint32
	// For stmtUse: the schema name (unquoted) as a slice of the source.
	arg []byte
	// For stmtKill: the id, and whether it was well formed (arg is its
	// text; killQuery and killSelf below).
	killID uint64
	// For stmtConnectionID/stmtLastInsertID: the column name the server
	// would report (the expression text or the alias).
	colName []byte
	// priv is the privilege the first statement of the text that needs
	// one needs (privNone for almost every statement): accounts without
	// admin are refused such statements.
	priv privilege
	// For stmtKill: KILL QUERY; the id is CONNECTION_ID().
	killQuery, killSelf bool
	// ro caches scanReadOnly's verdict on the text (session.queryReadOnly).
	ro readOnlyVerdict
}

// scanQuery classifies sql. It allocates nothing.
func scanQuery(sql []byte, noBackslash bool) queryInfo {
	lx := lexer{src: sql, noBackslash: noBackslash}
	var qi queryInfo
	first := lx.next()
	for lx.isPunct(first, '(') { // (SELECT ...) UNION ...
		first = lx.next()
	}
	if first.kind == tokEnd {
		// White space alone is the empty query (ER_EMPTY_QUERY); text that
		// is only comments is a statement the server answers with OK, so
		// it goes to a backend like any other.
		if !lx.sawComment {
			qi.kind = stmtEmpty
		} else {
			qi.kind = stmtOther
		}
		return qi
	}
	switch {
	case lx.is(first, "SELECT"):
		qi.kind = stmtSelect
		lx2 := lx
		if k, name := matchSelectFunc(&lx2); k != stmtOther {
			qi.kind, qi.colName = k, name
			if k == stmtConnectionID {
				qi.feats |= featConnID // answered locally, but rewritten when prepared
			}
			return qi
		}
		if lx2 = lx; matchSelectSysVars(&lx2) {
			qi.kind = stmtReadSysVars
			return qi
		}
	case lx.is(first, "SHOW"):
		lx2 := lx
		if pattern, ok := matchShowSSLStatus(&lx2); ok {
			qi.kind, qi.arg = stmtShowSSL, pattern
			return qi
		}
	case lx.is(first, "SET"):
		qi.kind = stmtSet
	case lx.is(first, "USE"):
		qi.kind = stmtUse
		lx2 := lx
		t := lx2.next()
		switch t.kind {
		case tokWord:
			qi.arg = lx2.text(t)
		case tokQuoted, tokString:
			if inner, ok := lx2.unquote(t); ok {
				qi.arg = inner
			} else {
				qi.kind = stmtOther
			}
		default:
			qi.kind = stmtOther
		}
		if end := lx2.next(); !(end.kind == tokEnd || lx2.isPunct(end, ';')) {
			qi.kind = stmtOther
		}
	case lx.is(first, "KILL"):
		qi.kind = stmtKill
		lx2 := lx
		t := lx2.next()
		if lx2.is(t, "HARD") || lx2.is(t, "SOFT") {
			t = lx2.next()
		}
		if lx2.is(t, "CONNECTION") || lx2.is(t, "QUERY") {
			qi.killQuery = lx2.is(t, "QUERY")
			t = lx2.next()
		}
		if lx2.is(t, "CONNECTION_ID") {
			lx3 := lx2
			if lx3.isPunct(lx3.next(), '(') {
				if c := lx3.next(); lx3.isPunct(c, ')') {
					if e := lx3.next(); e.kind == tokEnd || lx3.isPunct(e, ';') {
						qi.killSelf = true
						qi.arg = lx3.src[t.start:c.end]
					}
				}
			}
		}
		if t.kind == tokNumber {
			var v uint64
			ok := true
			for _, c := range lx2.text(t) {
				if !isDigit(c) || v > 1<<40 {
					ok = false
					break
				}
				v = v*10 + uint64(c-'0')
			}
			if e := lx2.next(); ok && (e.kind == tokEnd || lx2.isPunct(e, ';')) {
				qi.killID = v
				qi.arg = lx2.text(t)
			}
		}
	case lx.is(first, "LOCK"):
		lx2 := lx
		if t := lx2.next(); lx2.is(t, "TABLE") || lx2.is(t, "TABLES") {
			qi.kind = stmtLock
		}
	case lx.is(first, "UNLOCK"):
		lx2 := lx
		if t := lx2.next(); lx2.is(t, "TABLE") || lx2.is(t, "TABLES") {
			qi.kind = stmtUnlock
		}
	case lx.is(first, "FLUSH"):
		// FLUSH TABLE[S] [names] WITH READ LOCK / FOR EXPORT
		lx2 := lx
		var prev1, prev2 token
		for t := lx2.next(); t.kind != tokEnd && !lx2.isPunct(t, ';'); t = lx2.next() {
			if lx2.is(t, "LOCK") && lx2.is(prev1, "READ") && lx2.is(prev2, "WITH") {
				qi.kind = stmtFlushLock
			}
			if lx2.is(t, "EXPORT") && lx2.is(prev1, "FOR") {
				qi.kind = stmtFlushLock
			}
			prev2, prev1 = prev1, t
		}
	case lx.is(first, "PREPARE"):
		qi.kind = stmtPrepare
	case lx.is(first, "CALL"):
		qi.kind = stmtCall
	case lx.is(first, "EXECUTE"):
		qi.kind = stmtExecute
	case lx.is(first, "LOAD"):
		lx2 := lx
		t := lx2.next()
		if lx2.is(t, "DATA") || lx2.is(t, "XML") {
			t = lx2.next()
			if lx2.is(t, "LOW_PRIORITY") || lx2.is(t, "CONCURRENT") {
				t = lx2.next()
			}
			if lx2.is(t, "LOCAL") {
				qi.kind = stmtLoadLocal
			}
		}
	case lx.is(first, "CREATE"):
		lx2 := lx
		t := lx2.next()
		if lx2.is(t, "OR") {
			lx2.next() // REPLACE
			t = lx2.next()
		}
		if lx2.is(t, "TEMPORARY") {
			qi.kind = stmtCreateTemp
		}
	}
	// Scan the whole text for features that pin wherever they appear.
	stmtStart := true
	var prev token
	for t := first; t.kind != tokEnd; t = lx.next() {
		if stmtStart && qi.priv == privNone {
			qi.priv = stmtPrivilege(lx, t, 0)
		}
		if stmtStart && !listedStatement(&lx, t) {
			qi.feats |= featUnlisted
		}
		if stmtStart && (lx.is(t, "INSERT") || lx.is(t, "REPLACE") || lx.is(t, "LOAD")) {
			qi.feats |= featLastIDWrite
		}
		if stmtStart && (lx.is(t, "CALL") || lx.is(t, "EXECUTE")) {
			// A procedure or a prepared statement may read or generate
			// an id; the proxy does not see its text here.
			qi.feats |= featLastIDRead | featLastIDWrite
		}
		switch t.kind {
		case tokSysVar:
			if readsDiagnostics(lx.text(t)[2:]) {
				qi.feats |= featDiag
			}
			if readsLastInsertID(lx.text(t)[2:]) {
				qi.feats |= featLastIDRead
			}
		case tokUserVar:
			qi.feats |= featUserVar
		case tokPunct:
			if t.end-t.start == 2 && lx.src[t.start] == ':' {
				qi.feats |= featUserVar
			}
			if lx.isPunct(t, ';') {
				stmtStart = true
				prev = t
				continue
			}
		case tokWord:
			if lx.is(t, "GET_LOCK") {
				qi.feats |= featGetLock
			} else if lx.is(t, "LAST_INSERT_ID") {
				// Read, or set with an argument: either way the
				// session's value must be on the backend, and is asked
				// for after.
				qi.feats |= featLastIDRead | featLastIDWrite
			} else if lx.is(t, "CONNECTION_ID") {
				qi.feats |= featConnID
			} else if lx.is(t, "SQL_CALC_FOUND_ROWS") {
				qi.feats |= featCalcFoundRows
			} else if lx.is(t, "TEMPORARY") && lx.is(prev, "CREATE") {
				qi.feats |= featTempTable
			} else if (lx.is(t, "WARNINGS") || lx.is(t, "ERRORS") || lx.is(t, "COUNT")) && lx.is(prev, "SHOW") ||
				lx.is(t, "DIAGNOSTICS") {
				qi.feats |= featDiag
			}
			if stmtStart && t.start != first.start {
				qi.feats |= featMulti
				switch {
				case lx.is(t, "LOCK"):
					qi.feats |= featLockTables
				case lx.is(t, "UNLOCK"):
					qi.feats |= featUnlock
				case lx.is(t, "PREPARE"):
					qi.feats |= featPrepare
				case lx.is(t, "SET"):
					qi.feats |= featSet
				case lx.is(t, "USE"):
					qi.feats |= featUse
				case lx.is(t, "CREATE"):
					// CREATE TEMPORARY is caught above through prev.
				}
			}
		default:
			if stmtStart && t.start != first.start {
				qi.feats |= featMulti
			}
		}
		stmtStart = false
		prev = t
	}
	if lx.bad {
		qi.feats |= featBad
	}
	if qi.kind == stmtExecute {
		qi.feats |= immediateFeatures(lexer{src: sql, noBackslash: noBackslash, pos: first.end})
	}
	return qi
}

// immediateFeatures scans the string literal of EXECUTE IMMEDIATE 'text'
// (lx positioned after EXECUTE) like a statement of its own, for the
// features that pin, which the server does not report (GET_LOCK, @x:=...).
// Any other form is refused to accounts without admin (privDynamicSQL).
func immediateFeatures(lx lexer) uint32 {
	if !lx.is(lx.next(), "IMMEDIATE") {
		return 0
	}
	lit := lx.next()
	inner, ok := lx.unquote(lit)
	if lit.kind != tokString || !ok {
		return 0
	}
	text := unescapeString(inner, lx.src[lit.start], lx.noBackslash)
	in := lexer{src: text, noBackslash: lx.noBackslash}
	if lx.is(in.next(), "EXECUTE") {
		return 0 // the server refuses nested EXECUTE IMMEDIATE
	}
	sub := scanQuery(text, lx.noBackslash)
	f := sub.feats & (featUserVar | featGetLock | featCalcFoundRows | featTempTable | featLockTables | featPrepare)
	switch sub.kind {
	case stmtLock, stmtFlushLock:
		f |= featLockTables
	case stmtCreateTemp:
		f |= featTempTable
	case stmtPrepare:
		f |= featPrepare
	}
	return f
}

// readsDiagnostics reports whether a system variable reference (without
// its @@) is @@warning_count or @@error_count, which read the diagnostics
// area of the previous statement.
func readsDiagnostics(name []byte) bool {
	switch {
	case len(name) > 8 && equalFoldLower(name[:8], "session."):
		name = name[8:]
	case len(name) > 6 && equalFoldLower(name[:6], "local."):
		name = name[6:]
	}
	return equalFoldLower(name, "warning_count") || equalFoldLower(name, "error_count")
}

// readsLastInsertID reports whether the system variable name (after @@)
// is the session's last insert id.
func readsLastInsertID(name []byte) bool {
	switch {
	case len(name) > 8 && equalFoldLower(name[:8], "session."):
		name = name[8:]
	case len(name) > 6 && equalFoldLower(name[:6], "local."):
		name = name[6:]
	}
	return equalFoldLower(name, "last_insert_id") || equalFoldLower(name, "identity")
}

// listedStatements are the first words of the statements whose effect on
// session state the proxy knows without the server's report: what they
// change is seen by the scanner (SET, USE, LOCK, CREATE TEMPORARY, user
// variables, GET_LOCK...) or by the status flags (transactions), or
// nothing. Without session tracking (5.5 mode, old servers) any other
// statement (CALL, EXECUTE, XA, HANDLER, anything unknown) pins.
var listedStatements = [...]string{
	"SELECT", "WITH", "VALUES", "TABLE", "INSERT", "UPDATE", "DELETE", "REPLACE", "SET", "USE",
	"SHOW", "DESCRIBE", "DESC", "EXPLAIN", "ANALYZE", "CHECK", "CHECKSUM", "OPTIMIZE", "REPAIR",
	"BEGIN", "START", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "LOCK", "UNLOCK", "DO",
	"CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "LOAD", "KILL", "PREPARE", "DEALLOCATE",
	"GRANT", "REVOKE", "FLUSH", "RESET", "GET",
}

// listedStatement reports whether t, the first token of a statement, is
// a listed statement kind ("(" opens a parenthesised SELECT).
func listedStatement(lx *lexer, t token) bool {
	if lx.isPunct(t, '(') {
		return true
	}
	for _, w := range listedStatements {
		if lx.is(t, w) {
			return true
		}
	}
	return false
}

// maxSysVarColumns bounds the columns of a SELECT @@var, ... the proxy
// answers itself.
const maxSysVarColumns = 8

// matchSelectSysVars recognises SELECT @@[session.|local.]var [AS alias],
// ... where every var has a floor (varFloors): the proxy answers such reads
// from the session's own values, which the backend may not hold. lx is
// positioned after SELECT.
func matchSelectSysVars(lx *lexer) bool {
	for i := 0; i < maxSysVarColumns; i++ {
		_, _, more, ok := readSysVarColumn(lx)
		if !ok {
			return false
		}
		if !more {
			return true
		}
	}
	return false
}

// readSysVarColumn reads one column of such a SELECT: the variable, the
// column name the server would report (the alias, or the expression as
// written) and whether a comma follows. A bare word after the variable
// (FROM, an alias without AS) is not recognised: the server answers those.
func readSysVarColumn(lx *lexer) (v varID, name []byte, more, ok bool) {
	t := lx.next()
	if t.kind != tokSysVar {
		return 0, nil, false, false
	}
	name = lx.text(t)
	ref := name[2:]
	switch {
	case len(ref) > 8 && equalFoldLower(ref[:8], "session."):
		ref = ref[8:]
	case len(ref) > 6 && equalFoldLower(ref[:6], "local."):
		ref = ref[6:]
	}
	v, known := lookupVar(ref)
	if !known || varFloors[v].min == 0 {
		return 0, nil, false, false
	}
	t = lx.next()
	if lx.is(t, "AS") {
		t = lx.next()
		if t.kind == tokWord {
			name = lx.text(t)
			t = lx.next()
		} else if t.kind != tokQuoted && t.kind != tokString {
			return 0, nil, false, false
		}
	}
	if t.kind == tokQuoted || t.kind == tokString {
		inner, ok := lx.unquote(t)
		if !ok || len(inner) != len(unescapeString(inner, lx.src[t.start], lx.noBackslash)) {
			return 0, nil, false, false // escapes in the alias: left to the server
		}
		name = inner
		t = lx.next()
	}
	switch {
	case lx.isPunct(t, ','):
		return v, name, true, true
	case lx.isPunct(t, ';'):
		t = lx.next()
	}
	return v, name, false, t.kind == tokEnd
}

// matchShowSSLStatus recognises SHOW [SESSION|LOCAL] STATUS LIKE 'pattern'
// whose pattern can only match Ssl_ variables (it starts with "ssl", no
// wildcard among those three letters, and no escape the proxy would have
// to decode): the status of the client's own connection, which the proxy
// answers since the backend's would describe another connection. lx is
// positioned after SHOW; the pattern is returned unquoted.
func matchShowSSLStatus(lx *lexer) ([]byte, bool) {
	t := lx.next()
	if lx.is(t, "SESSION") || lx.is(t, "LOCAL") {
		t = lx.next()
	}
	if !lx.is(t, "STATUS") || !lx.is(lx.next(), "LIKE") {
		return nil, false
	}
	t = lx.next()
	if t.kind != tokString {
		return nil, false
	}
	pattern, ok := lx.unquote(t)
	if !ok || len(pattern) < 3 || lowerASCII(pattern[0]) != 's' || lowerASCII(pattern[1]) != 's' || lowerASCII(pattern[2]) != 'l' {
		return nil, false
	}
	for _, c := range pattern {
		if c == '\\' || c == lx.src[t.start] {
			return nil, false
		}
	}
	if end := lx.next(); end.kind != tokEnd && !lx.isPunct(end, ';') {
		return nil, false
	}
	if lx.next().kind != tokEnd {
		return nil, false
	}
	return pattern, true
}

// likeMatch is SQL's LIKE for an unescaped pattern, case-insensitive in
// ASCII as under the server's default collation: % matches any run of
// characters, _ any one.
func likeMatch(pattern, s string) bool {
	for len(pattern) > 0 {
		switch c := pattern[0]; c {
		case '%':
			for pattern = pattern[1:]; len(pattern) > 0 && pattern[0] == '%'; pattern = pattern[1:] {
			}
			if pattern == "" {
				return true
			}
			for i := 0; i <= len(s); i++ {
				if likeMatch(pattern, s[i:]) {
					return true
				}
			}
			return false
		case '_':
			if s == "" {
				return false
			}
		default:
			if s == "" || lowerASCII(s[0]) != lowerASCII(c) {
				return false
			}
		}
		pattern, s = pattern[1:], s[1:]
	}
	return s == ""
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// matchSelectFunc recognises SELECT CONNECTION_ID() and SELECT
// LAST_INSERT_ID() (optionally with an alias), the connection-scoped
// functions the proxy answers itself. lx is positioned after SELECT.
func matchSelectFunc(lx *lexer) (stmtKind, []byte) {
	fn := lx.next()
	var kind stmtKind
	switch {
	case lx.is(fn, "CONNECTION_ID"):
		kind = stmtConnectionID
	case lx.is(fn, "LAST_INSERT_ID"):
		kind = stmtLastInsertID
	default:
		return stmtOther, nil
	}
	if !lx.isPunct(lx.next(), '(') {
		return stmtOther, nil
	}
	closeParen := lx.next()
	if !lx.isPunct(closeParen, ')') {
		return stmtOther, nil
	}
	name := lx.src[fn.start:closeParen.end]
	t := lx.next()
	if lx.is(t, "AS") {
		t = lx.next()
	}
	switch t.kind {
	case tokWord:
		name = lx.text(t)
		t = lx.next()
	case tokQuoted, tokString:
		inner, ok := lx.unquote(t)
		if !ok {
			return stmtOther, nil
		}
		name = inner
		t = lx.next()
	}
	if lx.isPunct(t, ';') {
		t = lx.next()
	}
	if t.kind != tokEnd {
		return stmtOther, nil
	}
	return kind, name
}

// ---- statements only an admin account may run ----

// privilege is what the server would require of a statement that acts on
// the whole server or on the account it runs as. The proxy refuses such
// statements to sessions running as a shared account (the service account,
// a backend= mapping) without the users-file field admin: the statement
// would act for every client of that account (session.refuses).
type privilege uint8

const (
	privNone privilege = iota
	privCreateUser
	privGrantOption
	privSuper
	privReload
	privShutdown
	// privDynamicSQL: PREPARE ... FROM or EXECUTE IMMEDIATE with a text
	// the proxy cannot see (a variable, an expression): it might be any of
	// the above, so only an admin may run it.
	privDynamicSQL
	// privBackup: BACKUP STAGE and BACKUP LOCK (RELOAD on the server);
	// the locks they take are session state the server does not report.
	privBackup
)

// privilegeNames are the names the server gives in ERR 1227.
var privilegeNames = [...]string{
	privNone:        "",
	privCreateUser:  "CREATE USER",
	privGrantOption: "GRANT OPTION",
	privSuper:       "SUPER",
	privReload:      "RELOAD",
	privShutdown:    "SHUTDOWN",
	privDynamicSQL:  "SUPER",
	privBackup:      "RELOAD",
}

// privilegeMessages are the texts of the ERR 1227 the proxy sends, built
// once so that a refusal allocates nothing.
var privilegeMessages = func() (m [len(privilegeNames)]string) {
	for p, name := range privilegeNames {
		m[p] = "Access denied; you need (at least one of) the " + name + " privilege(s) for this operation"
	}
	m[privDynamicSQL] += " (through the proxy, PREPARE ... FROM and EXECUTE IMMEDIATE run other text than a " +
		"string literal only for accounts with the users-file field admin: the proxy cannot check what it would run)"
	return m
}()

// adminStatements maps a statement's first word, and its second where it
// matters ("" matches any), to the privilege it needs. SET, CREATE ...
// FUNCTION ... SONAME, PREPARE and EXECUTE IMMEDIATE are handled in
// stmtPrivilege because their shape matters beyond two words.
var adminStatements = [...]struct {
	first, second string
	priv          privilege
}{
	{"GRANT", "", privGrantOption},
	{"REVOKE", "", privGrantOption},
	{"CREATE", "USER", privCreateUser},
	{"CREATE", "ROLE", privCreateUser},
	{"ALTER", "USER", privCreateUser},
	{"DROP", "USER", privCreateUser},
	{"DROP", "ROLE", privCreateUser},
	{"RENAME", "USER", privCreateUser},
	{"CREATE", "SERVER", privSuper},
	{"ALTER", "SERVER", privSuper},
	{"DROP", "SERVER", privSuper},
	{"ALTER", "INSTANCE", privSuper},
	{"SHUTDOWN", "", privShutdown},
	{"RESTART", "", privShutdown},
	{"INSTALL", "", privSuper},   // PLUGIN, SONAME, COMPONENT
	{"UNINSTALL", "", privSuper}, // PLUGIN, SONAME, COMPONENT
	// Every FLUSH needs RELOAD and acts server-wide (FLUSH TABLES WITH
	// READ LOCK blocks every client); so does every RESET (MASTER, SLAVE,
	// REPLICA, QUERY CACHE, PERSIST).
	{"FLUSH", "", privReload},
	{"RESET", "", privReload},
	{"BACKUP", "", privBackup}, // BACKUP STAGE, BACKUP LOCK
	{"CHANGE", "", privSuper},  // CHANGE MASTER / REPLICATION SOURCE / REPLICATION FILTER
	{"START", "SLAVE", privSuper},
	{"START", "REPLICA", privSuper},
	{"START", "ALL", privSuper}, // START ALL SLAVES
	{"START", "GROUP_REPLICATION", privSuper},
	{"STOP", "", privSuper},  // SLAVE, REPLICA, ALL SLAVES, GROUP_REPLICATION
	{"PURGE", "", privSuper}, // BINARY LOGS, MASTER LOGS
	{"BINLOG", "", privSuper},
	{"CLONE", "", privSuper},
}

// maxDynamicDepth bounds how deep string literals of PREPARE and EXECUTE
// IMMEDIATE are scanned for the statements they hold (the server itself
// refuses to nest them).
const maxDynamicDepth = 2

// privilegeOf returns the privilege the first statement of sql (any
// statement of a batch) that needs one needs, or privNone.
func privilegeOf(sql []byte, noBackslash bool, depth int) privilege {
	if depth > maxDynamicDepth {
		return privDynamicSQL
	}
	lx := lexer{src: sql, noBackslash: noBackslash}
	start := true
	for t := lx.next(); t.kind != tokEnd; t = lx.next() {
		if lx.isPunct(t, ';') {
			start = true
			continue
		}
		if start {
			if p := stmtPrivilege(lx, t, depth); p != privNone {
				return p
			}
		}
		start = false
	}
	return privNone
}

// stmtPrivilege classifies the statement whose first token is t; lx (a
// copy, so the caller's position is kept) is positioned after t.
func stmtPrivilege(lx lexer, t token, depth int) privilege {
	if t.kind != tokWord {
		return privNone
	}
	switch {
	case lx.is(t, "SET"):
		return setPrivilege(lx, depth)
	case lx.is(t, "PREPARE"):
		// PREPARE name FROM 'text'
		if n := lx.next(); n.kind != tokWord && n.kind != tokQuoted {
			return privNone // a syntax error the server reports
		}
		if !lx.is(lx.next(), "FROM") {
			return privNone
		}
		return literalPrivilege(&lx, depth, false)
	case lx.is(t, "EXECUTE"):
		// EXECUTE IMMEDIATE 'text' [USING ...]; a plain EXECUTE runs a
		// statement whose text was checked when it was prepared.
		if !lx.is(lx.next(), "IMMEDIATE") {
			return privNone
		}
		return literalPrivilege(&lx, depth, true)
	case lx.is(t, "CREATE") || lx.is(t, "ALTER"):
		save := lx
		second := lx.next()
		if lx.is(second, "OR") { // OR REPLACE
			lx.next()
			second = lx.next()
		}
		if lx.is(second, "DEFINER") { // DEFINER = account
			for second = lx.next(); second.kind != tokEnd && !isStoredProgram(&lx, second); second = lx.next() {
			}
		}
		if lx.is(second, "AGGREGATE") || lx.is(second, "FUNCTION") {
			// A loadable function (CREATE FUNCTION f RETURNS INTEGER
			// SONAME 'lib.so') runs a shared library in the server.
			scan := lx
			for u := scan.next(); u.kind != tokEnd && !scan.isPunct(u, ';'); u = scan.next() {
				if scan.is(u, "SONAME") {
					return privSuper
				}
			}
		}
		if isStoredProgram(&lx, second) || lx.is(second, "AGGREGATE") {
			// The body runs later with the definer's rights (the
			// service account), out of the proxy's sight: any admin
			// statement anywhere in it is refused now.
			return bodyPrivilege(lx, depth)
		}
		lx = save
		if lx.is(t, "ALTER") {
			break
		}
		if lx.is(second, "USER") || lx.is(second, "ROLE") {
			return privCreateUser
		}
		if lx.is(second, "SERVER") {
			return privSuper
		}
		return privNone
	}
	var second token
	haveSecond := false
	for _, a := range adminStatements {
		if !lx.is(t, a.first) {
			continue
		}
		if a.second == "" {
			return a.priv
		}
		if !haveSecond {
			second, haveSecond = lx.next(), true
		}
		if lx.is(second, a.second) {
			return a.priv
		}
	}
	return privNone
}

// isStoredProgram reports whether t names a kind of stored program, whose
// body the server runs later with its definer's rights.
func isStoredProgram(lx *lexer, t token) bool {
	return lx.is(t, "PROCEDURE") || lx.is(t, "FUNCTION") || lx.is(t, "TRIGGER") || lx.is(t, "EVENT") ||
		lx.is(t, "PACKAGE")
}

// bodyPrivilege scans a stored program's definition: every word is taken
// as a possible statement start (the body's statements may stand after
// BEGIN, DO, THEN, a label... which a lexer does not tell apart), so an
// admin statement anywhere in it is found; a column or label that happens
// to be named like one (FLUSH, RESET...) is refused too, on the safe side.
func bodyPrivilege(lx lexer, depth int) privilege {
	for t := lx.next(); t.kind != tokEnd; t = lx.next() {
		if t.kind != tokWord || lx.is(t, "CREATE") || lx.is(t, "ALTER") {
			continue
		}
		if p := stmtPrivilege(lx, t, depth); p != privNone {
			return p
		}
	}
	return privNone
}

// setPrivilege classifies a SET statement; lx is positioned after SET.
// SET PASSWORD, SET DEFAULT ROLE and any global or persistent assignment
// (SET GLOBAL, SET PERSIST[_ONLY], @@global.x and @@persist.x targets,
// anywhere in the list, and SET GLOBAL TRANSACTION) need a privilege.
func setPrivilege(lx lexer, depth int) privilege {
	t := lx.next()
	switch {
	case lx.is(t, "PASSWORD"):
		return privCreateUser
	case lx.is(t, "DEFAULT"):
		save := lx
		if lx.is(lx.next(), "ROLE") {
			return privCreateUser
		}
		lx = save
	case lx.is(t, "STATEMENT"):
		// SET STATEMENT var=value[, ...] FOR statement: the assignments
		// are session-scoped; the statement after FOR is what runs.
		parens := 0
		for u := lx.next(); u.kind != tokEnd && !lx.isPunct(u, ';'); u = lx.next() {
			switch {
			case lx.isPunct(u, '('):
				parens++
			case lx.isPunct(u, ')'):
				parens--
			case parens == 0 && lx.is(u, "FOR"):
				return stmtPrivilege(lx, lx.next(), depth)
			}
		}
		return privNone
	}
	parens := 0
	target := true // t is where an assignment's scope or name may stand
	for ; t.kind != tokEnd && !lx.isPunct(t, ';'); t = lx.next() {
		if target {
			if lx.is(t, "GLOBAL") || lx.is(t, "PERSIST") || lx.is(t, "PERSIST_ONLY") {
				return privSuper
			}
			if t.kind == tokSysVar && globalSysVar(lx.text(t)[2:]) {
				return privSuper
			}
			target = false
		}
		switch {
		case lx.isPunct(t, '('):
			parens++
		case lx.isPunct(t, ')'):
			parens--
		case parens == 0 && lx.isPunct(t, ','):
			target = true
		}
	}
	return privNone
}

// globalSysVar reports whether a system variable reference (without its
// @@) names the global or persisted value. The scope is what comes before
// the first dot, or the whole token: MariaDB also reads @@global . x (space
// or a comment before the dot) and @@global.`x` (quoted name), which the
// lexer gives as the token @@global or @@global. followed by the rest.
func globalSysVar(name []byte) bool {
	scope := name
	for i, c := range name {
		if c == '.' {
			scope = name[:i]
			break
		}
	}
	for _, s := range [...]string{"global", "persist", "persist_only"} {
		if len(scope) == len(s) && equalFoldLower(scope, s) {
			return true
		}
	}
	return false
}

// literalPrivilege looks at the text PREPARE ... FROM or EXECUTE IMMEDIATE
// runs: a lone string literal is scanned like a statement of its own; any
// other expression (a variable, CONCAT(...), adjacent literals, an
// introducer) hides its text from the proxy and needs privDynamicSQL.
func literalPrivilege(lx *lexer, depth int, using bool) privilege {
	lit := lx.next()
	if lit.kind != tokString {
		return privDynamicSQL
	}
	inner, ok := lx.unquote(lit)
	if !ok {
		return privDynamicSQL
	}
	end := lx.next()
	if !(end.kind == tokEnd || lx.isPunct(end, ';') || (using && lx.is(end, "USING"))) {
		return privDynamicSQL
	}
	return privilegeOf(unescapeString(inner, lx.src[lit.start], lx.noBackslash), lx.noBackslash, depth+1)
}

// unescapeString undoes a string literal's escapes (doubled quotes and,
// unless NO_BACKSLASH_ESCAPES, backslash sequences) so that its text can be
// scanned as the server will parse it. It returns inner itself, allocating
// nothing, when there is nothing to undo.
func unescapeString(inner []byte, quote byte, noBackslash bool) []byte {
	plain := true
	for _, c := range inner {
		if c == quote || (c == '\\' && !noBackslash) {
			plain = false
			break
		}
	}
	if plain {
		return inner
	}
	out := make([]byte, 0, len(inner))
	for i := 0; i < len(inner); i++ {
		c := inner[i]
		switch {
		case c == '\\' && !noBackslash && i+1 < len(inner):
			i++
			switch e := inner[i]; e {
			case 'n':
				c = '\n'
			case 't':
				c = '\t'
			case 'r':
				c = '\r'
			case 'b':
				c = '\b'
			case '0':
				c = 0
			case 'Z':
				c = 26
			case '%', '_':
				out = append(out, '\\')
				c = e
			default:
				c = e
			}
		case c == quote && i+1 < len(inner) && inner[i+1] == quote:
			i++
		}
		out = append(out, c)
	}
	return out
}

// rewriteConnectionID appends sql to dst with every call of CONNECTION_ID()
// (outside strings and comments; not a schema's function db.connection_id())
// replaced by the session's id as connIDText writes it, so that the
// function answers the session's id in any expression, as on a direct
// connection, where a backend would answer its own. found is false when
// there was none.
func rewriteConnectionID(dst, sql []byte, noBackslash bool, id uint32) (out []byte, found bool) {
	lx := lexer{src: sql, noBackslash: noBackslash}
	last := 0
	var prev token
	for t := lx.next(); t.kind != tokEnd; prev, t = t, lx.next() {
		if !lx.is(t, "CONNECTION_ID") || lx.isPunct(prev, '.') {
			continue
		}
		lx2 := lx
		if !lx2.isPunct(lx2.next(), '(') {
			continue
		}
		closing := lx2.next()
		if !lx2.isPunct(closing, ')') {
			continue
		}
		dst = append(dst, sql[last:t.start]...)
		if lx2.inExecCmt {
			// Inside /*! ... */ a comment would end it: no spelling (the
			// column keeps the server's name for the CAST).
			dst = strconv.AppendUint(append(dst, "CAST("...), uint64(id), 10)
			dst = append(dst, " AS UNSIGNED)"...)
		} else {
			dst = appendConnIDText(dst, id, sql[t.start:closing.end])
		}
		last = closing.end
		lx = lx2
		t = closing
		found = true
	}
	return append(dst, sql[last:]...), found
}

// appendConnIDText writes what stands for the call spelled as call in a
// rewritten statement: the id as an unsigned integer, as the function
// returns, with the call's spelling in a comment. The server names an
// unaliased column after its text, comments included, and relayColumnDef
// puts the spelling back in place of the whole (a spelling that holds a
// comment itself is written CONNECTION_ID()).
func appendConnIDText(dst []byte, id uint32, call []byte) []byte {
	dst = appendConnIDPrefix(dst, id)
	if bytes.ContainsAny(call, "/*") {
		call = []byte("CONNECTION_ID()")
	}
	return append(append(dst, call...), connIDSuffix...)
}

// appendConnIDPrefix writes how appendConnIDText's text begins.
func appendConnIDPrefix(dst []byte, id uint32) []byte {
	dst = append(dst, "CAST("...)
	dst = strconv.AppendUint(dst, uint64(id), 10)
	return append(dst, "/*"...)
}

// connIDSuffix ends appendConnIDText's text.
const connIDSuffix = "*/ AS UNSIGNED)"
