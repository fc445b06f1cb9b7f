// Package mysqlwire implements the MySQL/MariaDB client/server protocol for
// both sides of a connection: framing, length-encoded values, the v10
// handshake and its response, authentication scrambles, OK/ERR/EOF packets,
// command requests, binary protocol values and, most importantly for a
// proxy, ResponseTracker, which follows a server's response to one command
// packet by packet and says when it is complete and in what state it left
// the session.
//
// # Rules
//
// The package is written for a reactor-based proxy that owns its buffers:
//
//   - It performs no I/O and starts no goroutines. Decoders work on bytes
//     the caller already holds and report "need more" (ok == false with a
//     nil error) instead of blocking. Encoders append to a caller-supplied
//     slice and return it, in the style of strconv.AppendInt.
//   - The hot path allocates nothing: ReadPacket, PeekHeader, CommandOf,
//     IsResultSetTerminator, ParseOK/ParseERR, RewriteStatementID,
//     ResponseTracker.Feed, and the Append* builders writing into a buffer
//     with spare capacity. Decoded byte slices alias the input and are valid
//     only while the caller leaves the underlying buffer alone. Tests assert
//     this with testing.AllocsPerRun.
//   - It never trusts a length read from the wire: every length is checked
//     against the bytes actually present (ErrTruncated) and against the
//     caller's limit (ErrPacketTooLarge) before anything is sliced or
//     allocated, so a hostile peer cannot make it panic, loop or allocate
//     without bound. Every decoder has a fuzz target.
//   - It holds no locks, keeps no global mutable state and uses no
//     reflection; a value is used by one goroutine at a time.
//
// # What a proxy uses
//
// Framing: ReadPacket (the next complete packet in a buffer, or need-more,
// or ErrPacketTooLarge), PeekHeader, PutHeader, AppendPacket (splits payloads
// of 16 MiB and more), AppendHeader + FinishPacket (build a payload in place),
// Joiner (reassemble split payloads within a bound), MaxPacketPayload.
//
// Requests: CommandOf, QueryText, Command and its constants, Command.HasStatementID,
// Command.ExpectsResponse, StatementID and RewriteStatementID (map client
// statement ids to backend ids in place), ParseStmtExecute (+ Params),
// ParseStmtSendLongData, ParseStmtClose/Reset/Fetch, ParseChangeUser,
// ParseSetOption, and builders AppendCommand, AppendStmtExecute,
// AppendStmtClose/Reset/Fetch/SendLongData, AppendChangeUser,
// AppendSetOption, AppendProcessKill.
//
// Responses: ResponseTracker (Start/StartAuth, Feed returning NeedMore,
// Complete or ClientTurn; Status, InTransaction, CursorOpen, Err,
// AffectedRows, LastInsertID, SessionStateChanged, LocalInfile,
// AuthSwitched, Prepared, LastKind), ParseOK with SessionStateIter,
// ParseERR, ParseEOF, ParsePrepareOK, ParseColumnDefinition,
// IsResultSetTerminator, and builders AppendOK, AppendERR (looks up the
// SQLSTATE of an ErrCode), AppendEOF, AppendResultSetEnd (EOF or 0xFE-OK for
// the client's mode), AppendPrepareOK, AppendColumnDefinition,
// AppendTextRow, AppendBinaryRow; row decoders NewTextRowIter and
// NewBinaryRowReader with DecodeBinaryValue/AppendBinaryValue.
//
// Connection phase: ParseHandshake/AppendHandshake (server greeting, with
// MariaDB extended capabilities), ParseHandshakeResponse/
// AppendHandshakeResponse and IsSSLRequest, auth switch and auth-more-data
// helpers, mysql_native_password (NativePasswordScramble,
// VerifyNativePassword from a stored SHA1(SHA1(pw)), NativeScrambleFromStage1)
// and caching_sha2_password (CachingSHA2Scramble, VerifyCachingSHA2 from a
// stored SHA256(SHA256(pw)), the RSA-OAEP full-authentication pieces).
//
// # Capabilities
//
// Capabilities carry MariaDB's extended capability bits in their upper 32
// bits; they appear on the wire only while CLIENT_MYSQL (bit 0) is clear.
// MySQL55Caps masks a capability set down to what a MySQL 5.5 server offers.
//
// Sequence ids: every Append* function that writes a whole packet takes the
// sequence id to use and returns the next one, so a caller that synthesizes
// or renumbers packets threads the id through. ResponseTracker does not look
// at sequence ids; checking them is the caller's job.
//
// LOCAL INFILE: ResponseTracker reports a 0xFB request wherever a COM_QUERY
// response may start. Honouring it is a policy decision the caller must make
// (only for a LOAD DATA LOCAL the client really sent, and only if the client
// negotiated CLIENT_LOCAL_FILES), because a rogue server can use it to read
// client files.
package mysqlwire
