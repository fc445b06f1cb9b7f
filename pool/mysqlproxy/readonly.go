package mysqlproxy

import "github.com/scalestack/scalestack/mysqlwire"

// This file decides which statements the proxy may write to a backend
// behind others whose response it has not read yet (exchange batches: a
// deferred BEGIN, session-state replays). If an operation ahead of such a
// statement fails, the statement still runs, in the wrong context (the
// previous session's schema, outside the transaction), and only its
// response can be thrown away: so it must change nothing. The test is an
// allowlist, conservative by design: anything it does not recognise is not
// free, and is sent only once what precedes it has succeeded.

// sideEffectFree reports whether the COM_QUERY text sql (scanned into qi)
// is a plain SELECT that changes nothing on the server or in the session:
// one statement, no locking clause (FOR UPDATE, LOCK IN SHARE MODE, FOR
// SHARE), no INTO, no user variables or := assignment, no reads of
// diagnostics, LAST_INSERT_ID() or CONNECTION_ID(), and no calls of
// anything but a small list of pure built-in functions: a stored function
// (or NEXTVAL, SLEEP, GET_LOCK, RAND...) may write, wait or change session
// state. It allocates nothing.
func sideEffectFree(sql []byte, noBackslash bool, qi *queryInfo) bool {
	return scanReadOnly(sql, noBackslash, qi).sideEffectFree()
}

// pipelineSafe reports whether a statement (a COM_QUERY's text, or a
// prepared statement's at PREPARE) may be written to a backend behind
// other sessions' statements (pipeline.go): sideEffectFree's test, and no
// @@variable either, because a pipelined backend's session is not quite
// the statement's own (it is READ ONLY, which @@tx_read_only would show).
// The server enforces the rest: pipelined statements run only on backends
// in a read-only session, so a write the scan misjudged fails with 1792.
func pipelineSafe(sql []byte, noBackslash bool, qi *queryInfo) bool {
	return scanReadOnly(sql, noBackslash, qi).pipelineSafe()
}

// readOnlyVerdict is scanReadOnly's answer for a text, kept in its
// queryInfo (and a prepared statement's sessStmt) so that one scan
// answers both sideEffectFree and pipelineSafe for a command.
type readOnlyVerdict uint8

const (
	roUnscanned readOnlyVerdict = iota
	roWrites                    // not side-effect free
	roSysVars                   // side-effect free, and reads @@variables
	roPure                      // side-effect free, no @@variables
)

func (v readOnlyVerdict) sideEffectFree() bool { return v == roSysVars || v == roPure }
func (v readOnlyVerdict) pipelineSafe() bool   { return v == roPure }

// scanReadOnly is the allowlist behind sideEffectFree and pipelineSafe.
func scanReadOnly(sql []byte, noBackslash bool, qi *queryInfo) readOnlyVerdict {
	const notFree = featMulti | featBad | featUserVar | featGetLock | featCalcFoundRows | featTempTable |
		featLockTables | featUnlock | featPrepare | featSet | featUse | featUnlisted | featDiag |
		featLastIDRead | featLastIDWrite | featConnID
	if qi.kind != stmtSelect || qi.feats&notFree != 0 {
		return roWrites
	}
	lx := lexer{src: sql, noBackslash: noBackslash}
	prev := token{kind: tokEnd}
	verdict := roPure
	for {
		t := lx.next()
		switch t.kind {
		case tokEnd:
			if lx.bad {
				return roWrites
			}
			return verdict
		case tokUserVar:
			return roWrites
		case tokSysVar:
			verdict = roSysVars
		case tokPunct:
			switch lx.src[t.start] {
			case ':': // := assignment
				return roWrites
			case ';': // only a trailing one: featMulti said one statement
				if end := lx.next(); end.kind != tokEnd {
					return roWrites
				}
			case '(':
				if !pureCallOrSyntax(&lx, prev) {
					return roWrites
				}
			}
		case tokWord:
			if lx.is(t, "INTO") || lx.is(t, "FOR") || lx.is(t, "LOCK") || lx.is(t, "PROCEDURE") {
				return roWrites
			}
		}
		if prev.kind == tokPunct && lx.src[prev.start] == '.' && t.kind == tokWord {
			// db.f: a name after a qualifier is never a built-in; mark it
			// so that a '(' after it is refused.
			t.kind = tokQuoted
		}
		prev = t
	}
}

// pureCallOrSyntax reports whether the '(' after prev opens a call of a
// pure built-in, or a parenthesis the syntax puts after a keyword
// (IN (...), EXISTS (...), FROM (subquery)) or after no word at all.
func pureCallOrSyntax(lx *lexer, prev token) bool {
	switch prev.kind {
	case tokWord:
	case tokQuoted, tokString, tokUserVar, tokSysVar, tokNumber:
		return false // `f`(...), db.f(...), or something the allowlist does not know
	default:
		return true // a parenthesis after punctuation or at the start
	}
	name := lx.text(prev)
	for _, w := range pureFunctions {
		if equalFoldASCII(name, w) {
			return true
		}
	}
	return false
}

// pureFunctions are the words a '(' may follow in a side-effect-free
// SELECT: keywords after which the syntax opens a parenthesis, and
// built-in functions that read nothing but their arguments and the
// statement's rows and change nothing (not RAND, which moves the session's
// seed, nor SLEEP, GET_LOCK, NEXTVAL, LAST_INSERT_ID, BENCHMARK...). Upper
// case, for equalFoldASCII.
var pureFunctions = [...]string{
	// Syntax.
	"SELECT", "FROM", "JOIN", "ON", "USING", "WHERE", "AND", "OR", "NOT", "XOR", "IN", "EXISTS",
	"AS", "BY", "WHEN", "THEN", "ELSE", "CASE", "ANY", "ALL", "SOME", "BETWEEN", "LIKE", "IS",
	"DIV", "UNION", "EXCEPT", "INTERSECT", "HAVING", "DISTINCT", "OVER", "INTERVAL", "ROW",
	// Aggregates and pure built-ins.
	"COUNT", "SUM", "MIN", "MAX", "AVG", "GROUP_CONCAT",
	"CONCAT", "CONCAT_WS", "SUBSTRING", "SUBSTR", "LENGTH", "CHAR_LENGTH", "CHARACTER_LENGTH",
	"UPPER", "LOWER", "UCASE", "LCASE", "TRIM", "LTRIM", "RTRIM", "LEFT", "RIGHT", "LPAD", "RPAD",
	"REPLACE", "LOCATE", "INSTR", "POSITION", "FIELD", "FIND_IN_SET", "HEX", "UNHEX",
	"COALESCE", "IFNULL", "NULLIF", "IF", "ISNULL", "GREATEST", "LEAST",
	"ABS", "ROUND", "FLOOR", "CEIL", "CEILING", "MOD", "TRUNCATE",
	"CAST", "CONVERT", "CHAR", "BINARY", "DECIMAL", "DOUBLE", "FLOAT",
	"DATE", "DATE_FORMAT", "DATE_ADD", "DATE_SUB", "NOW", "CURDATE", "CURRENT_DATE", "CURRENT_TIMESTAMP",
	"UNIX_TIMESTAMP", "FROM_UNIXTIME", "YEAR", "MONTH", "DAY", "HOUR", "MINUTE", "SECOND",
	"MD5", "SHA1", "SHA2", "CRC32",
}

// queryReadOnly is scanReadOnly's verdict on the COM_QUERY being served,
// scanned once per command (batching and pipelining both ask).
func (s *session) queryReadOnly() readOnlyVerdict {
	if s.qi.ro == roUnscanned {
		s.qi.ro = scanReadOnly(s.payload[1:], s.noBackslash, &s.qi)
	}
	return s.qi.ro
}

// stmtSideEffectFree reports whether the command being served may be
// written behind operations whose responses are still to come: a
// side-effect-free COM_QUERY, or a COM_STMT_EXECUTE (without a cursor) of
// a statement whose text is one.
func (s *session) stmtSideEffectFree() bool {
	switch s.cmd {
	case mysqlwire.ComQuery:
		return s.queryReadOnly().sideEffectFree()
	case mysqlwire.ComStmtExecute:
		return s.stmt != nil && s.stmt.free && !s.stmt.wantCursor
	}
	return false
}
