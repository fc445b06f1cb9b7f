package mysqlproxy

// pipelineUnsafeFeats are the scanner's findings that keep a statement off
// a pipeline whatever its text: more than one statement, a read of
// diagnostics (another session's statement runs between), user variables,
// locks, SQL_CALC_FOUND_ROWS (FOUND_ROWS() would read a rider's count),
// LAST_INSERT_ID() or CONNECTION_ID() (both per session, replayed or
// rewritten by the proxy), an unlisted or unterminated statement.
const pipelineUnsafeFeats = featMulti | featDiag | featUserVar | featGetLock | featCalcFoundRows |
	featBad | featTempTable | featLockTables | featUnlock | featPrepare | featSet | featUse |
	featUnlisted | featLastIDRead | featLastIDWrite | featConnID

// pipelineSafe reports whether a statement (a COM_QUERY's text, or a
// prepared statement's at PREPARE) may be written to a backend behind
// other sessions' statements (see pipeline.go): one plain SELECT that
// reads and changes nothing but what it returns. qi is scanQuery's result
// for sql.
//
// The rule is an allowlist, and in doubt the answer is no: no locking
// clause (FOR UPDATE, FOR SHARE, LOCK IN SHARE MODE), no INTO (variables
// or files), no := and no @variable or @@variable, no sequence
// (NEXT/PREVIOUS VALUE FOR, NEXTVAL, LASTVAL), no PROCEDURE clause, and no
// call to any function but pipelineFunctions: any name followed by '('
// that is not one of them (a stored function, SLEEP, GET_LOCK,
// RELEASE_LOCK, LAST_INSERT_ID, CONNECTION_ID, FOUND_ROWS, RAND, NOW...),
// or a qualified or quoted name followed by '(', makes it unsafe. The
// server enforces the rest: pipelined statements run only on backends in a
// read-only session, so a write the scan misjudged fails with 1792.
func pipelineSafe(sql []byte, noBackslash bool, qi *queryInfo) bool {
	if qi.kind != stmtSelect || qi.feats&pipelineUnsafeFeats != 0 {
		return false
	}
	lx := lexer{src: sql, noBackslash: noBackslash}
	var prev token
	t := lx.next()
	for t.kind != tokEnd {
		next := lx.next()
		switch t.kind {
		case tokUserVar, tokSysVar:
			return false
		case tokPunct:
			switch lx.src[t.start] {
			case ':': // :=
				return false
			case ';':
				if next.kind != tokEnd {
					return false
				}
			}
		case tokQuoted:
			if lx.isPunct(next, '(') {
				return false // `f`(...): a stored function or UDF
			}
		case tokWord:
			if pipelineDeniedWord(lx.text(t)) {
				return false
			}
			if lx.isPunct(next, '(') && (lx.isPunct(prev, '.') || !pipelineCallAllowed(lx.text(t))) {
				return false
			}
		}
		prev, t = t, next
	}
	return !lx.bad
}

// pipelineDeniedWords are the words that make a SELECT lock, write, or
// touch a sequence or a procedure.
var pipelineDeniedWords = [...]string{
	"FOR", "LOCK", "INTO", "OUTFILE", "DUMPFILE", "NEXT", "PREVIOUS", "NEXTVAL", "LASTVAL",
	"SETVAL", "PROCEDURE", "SQL_CALC_FOUND_ROWS", "SKIP", "NOWAIT", "WAIT",
}

func pipelineDeniedWord(w []byte) bool {
	for _, d := range pipelineDeniedWords {
		if equalFoldASCII(w, d) {
			return true
		}
	}
	return false
}

// pipelineFunctions are the functions a pipelined SELECT may call: pure
// builtins whose result depends only on their arguments and the session's
// replayed state (character set, sql_mode). pipelineKeywords are words
// that may precede '(' without being a call.
var (
	pipelineFunctions = [...]string{
		"COUNT", "SUM", "MIN", "MAX", "AVG", "ABS", "ROUND", "FLOOR", "CEIL", "CEILING", "MOD",
		"LENGTH", "CHAR_LENGTH", "CHARACTER_LENGTH", "OCTET_LENGTH", "CONCAT", "CONCAT_WS",
		"LOWER", "UPPER", "LCASE", "UCASE", "SUBSTRING", "SUBSTR", "LEFT", "RIGHT", "TRIM",
		"LTRIM", "RTRIM", "REPLACE", "COALESCE", "IFNULL", "NULLIF", "IF", "GREATEST", "LEAST",
		"CAST", "CONVERT", "HEX", "CHAR", "DECIMAL", "BINARY",
	}
	pipelineKeywords = [...]string{
		"SELECT", "DISTINCT", "FROM", "JOIN", "ON", "USING", "WHERE", "AND", "OR", "XOR", "NOT",
		"IN", "EXISTS", "ANY", "ALL", "SOME", "AS", "BETWEEN", "LIKE", "IS", "BY", "HAVING",
		"UNION", "CASE", "WHEN", "THEN", "ELSE",
	}
)

func pipelineCallAllowed(w []byte) bool {
	for _, f := range pipelineFunctions {
		if equalFoldASCII(w, f) {
			return true
		}
	}
	for _, k := range pipelineKeywords {
		if equalFoldASCII(w, k) {
			return true
		}
	}
	return false
}
