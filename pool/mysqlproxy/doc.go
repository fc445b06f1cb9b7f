// Package mysqlproxy is Scale Stack's MySQL connection-concentrating
// proxy: many client sessions share exactly N backend connections, each of
// which serves a session only for one command's exchange unless the
// session's state pins it.
//
// It lives under pool because it is one protocol of the concentrator:
// package pool keeps the N connections, the wait queues, the cross-loop
// moves, reconnects, health checks and drain, and knows nothing of MySQL;
// this package is its pool.Protocol (Proxy.NewServer: the MySQL side of a
// backend, backend.go) and its clients (session.go), and the only one that
// imports mysqlwire. Other protocols (memcached) reuse pool the same way.
//
// # Layout
//
//   - session.go: one client connection: login, the commands it answers
//     itself, state and pinning; it is the pool.Client that waits for and
//     holds a backend.
//   - exchange.go: one command on one backend: the plan of sync operations
//     that bring the backend to the session's state, the command, the relay
//     of its response. STATES.md is the state machine of session, exchange
//     and backend, as a table.
//   - backend.go, health.go: the MySQL side of a pool.Backend: login, what
//     its server session is known to be, reset (COM_RESET_CONNECTION, or
//     COM_CHANGE_USER in 5.5 mode), COM_PING, COM_QUIT.
//   - stmt.go: prepared statements across backends. embed.go: statements
//     run by modules of the same process without a session (Embedded
//     callers). state.go, sqlscan.go:
//     the tracked variables and the SQL scanner. users.go, errors.go,
//     collations.go, stats.go, reload.go, drain.go, memory.go: accounts,
//     the proxy's own errors, counters, live settings, graceful shutdown.
//   - identity.go: the server accounts backends log in as (see
//     Identities).
//
// One COM_QUERY: the client's connection delivers it to session.OnData,
// which splits packets (mysqlwire.Joiner) and calls onCommand, then
// onQuery: sqlscan classifies the statement (pins, privileges, SET
// plans). forward asks the loop's pool.LoopPool for a backend
// (Acquire with the session's pool.Waiter): an idle one comes back at
// once through session.Granted, or the waiter is queued and Granted runs
// when a backend frees up, from the loop's end-of-iteration flush. Granted
// starts the exchange: makePlan lists the sync operations the backend
// needs (none, usually), run sends them one by one, then writeMain writes
// the query. The backend's connection delivers the response to
// pool.Backend.OnData, then backend.Data, which splits packets and hands
// each to exchange.onPacket: the response tracker follows it and relay
// copies it to the client with the client's sequence id. When the tracker
// says Complete, session.commandDone records state and pins, and
// finishCommand gives the backend back (LoopPool.Release) unless the
// session is pinned or keeps it for its diagnostics.
//
// # Architecture
//
// The N backend connections, their loops, wait queues, stealing and
// donation between loops, reconnects and health checks are package
// pool's (see its documentation). Each loop has the proxy's part beside
// the pool's (proxyLoop): its sessions, its PREPARE cache, its counters.
//
// Responses are relayed packet by packet as they arrive (rows are never
// decoded, result sets never buffered), with the client's sequence ids.
// Backends are opened with CLIENT_SESSION_TRACK (unless in 5.5 mode or the
// server lacks it) and without CLIENT_DEPRECATE_EOF, and clients are
// offered only capabilities that every backend honours: result sets need
// no translation, and OK packets are written again without the server's
// session state report and SERVER_SESSION_STATE_CHANGED (clients never see
// a backend's tracking data). A client that asks for CLIENT_SESSION_TRACK
// (offered except in 5.5 mode) gets a report the proxy builds per session
// from the report of its own command (the proxy's replays and probes are
// commands of their own, never relayed): what a session with the server's
// default tracking is told, the changed variables of
// session_track_system_variables' default list (autocommit, the three
// character_set_ variables, redirect_url, time_zone), then the schema. A session's own SET of session_track_* variables is not
// honoured (the SET runs on its backend, which pins it, and the report
// stays the default one); nor is tracking for a command the proxy answers
// itself, and a backend without tracking reports nothing.
//
// MariaDB's extended type metadata (MARIADB_CLIENT_EXTENDED_TYPE_INFO: a
// column's JSON, INET6, UUID or geometry type name, which the mariadb
// drivers map values by) is offered to clients while every backend's
// server has offered it, and backends are logged in with it. A column or
// parameter definition is relayed as it is when client and backend agree,
// and otherwise rewritten on the way: the metadata cut out for a client
// that did not ask for it, or put in empty for one whose backend has none
// (a backend of an older server met after the client logged in). The
// PREPARE cache keeps each response in the layout of the client that
// prepared it and answers only clients of that layout. Progress reports,
// bulk execution and metadata caching are not offered.
//
// CLIENT_FOUND_ROWS is honoured per client. The flag changes what the
// server reports as affected rows for the whole connection and is fixed
// at login (COM_CHANGE_USER carries no capability flags), so backends come
// in two pool.Classes, with and without it, within the N: a session waits
// with its class, takes an idle backend of it when there is one, and
// otherwise is handed any backend, which it has the pool reopen
// (pool.Backend.Reopen: COM_QUIT, a new connection in the same slot logged
// in with the flag, granted back to the session; counted in
// Stats.BackendReopens, backend_reopens_total) before its command runs. A
// load that mixes both kinds of client pays a login whenever a backend
// changes sides; hand-offs prefer a waiter of the backend's own class to
// keep that rare.
//
// # Session state
//
// The server is asked: as the last step of a backend's login or reset
// (so no command waits for it; before the first command after a reset
// that an exchange makes itself), the proxy sends SET
// session_track_state_change=ON, session_track_schema=ON,
// session_track_system_variables='*',
// session_track_transaction_info='CHARACTERISTICS' (trackingSETs), and
// reads the report in every OK packet of a response (mysqlwire parses it).
// A server that refuses it (MariaDB before 10.3 lacks the transaction
// tracker) gets the SET without session_track_transaction_info, and one
// that refuses that too is served without tracking, as in 5.5 mode (below);
// the fallback is remembered per target, logged once, and no client command
// fails for it. The schema
// reported is replayed: the session takes the server's word for it (a
// USE the proxy did not parse, EXECUTE IMMEDIATE 'USE db', also pins: the
// state-change flag that comes with the report may stand for more). Any
// other change reported (a system variable, the state-change flag for user
// variables, temporary tables and prepared statements, or pending
// transaction characteristics outside a transaction: SET TRANSACTION, XA
// START) pins the session, until it ends, unless the command is one whose every effect the
// proxy records itself (one tracked SET, USE, COM_INIT_DB), whatever
// produced it: a prepared SET, EXECUTE IMMEDIATE, a procedure (pinned,
// reason server_state). Without DEPRECATE_EOF a result set's EOF can only
// say that something changed; its report comes with the next OK. Outside a
// transaction such an EOF pins the session as a report would (MariaDB 10.11
// says so for every SELECT that calls a stored function, even one that
// changes nothing: such sessions stay pinned), and a backend whose report
// is so withheld is reset (COM_RESET_CONNECTION) before it serves another
// session. In 5.5 mode (no tracking) statement
// kinds the scanner does not classify (listedStatements in sqlscan.go: not
// CALL, EXECUTE, XA, HANDLER...) pin instead (reason unlisted_statement);
// so do they on a backend whose server refused every tracking SET.
//
// Tracking misses `SELECT @x:=...`, `SELECT ... INTO @v`, GET_LOCK and BACKUP
// STAGE (refused to non-admins anyway), so every statement text the proxy
// sees is scanned as well: COM_QUERY, COM_STMT_PREPARE (the pins its text
// calls for apply at each EXECUTE; a prepared SET always pins), the string
// literal of EXECUTE IMMEDIATE, and text PREPARE (which pins). An ERR
// answering CALL, a COM_STMT_EXECUTE, EXECUTE or EXECUTE IMMEDIATE, or a
// multi-statement leaves the backend's state unknown (a procedure may have
// changed session state, then raised SIGNAL; the ERR carries no report):
// the backend is reset (COM_RESET_CONNECTION, COM_CHANGE_USER in 5.5 mode)
// before anyone else uses it, unless the session is pinned and keeps it,
// and the session's own tracked state is replayed on its next backend (what
// the failed statement changed is lost to it). A response cut short (a
// client or backend gone mid-response) closes the backend.
//
// With Config.DeferBegin (--defer-begin, on by default in the binary) a
// plain BEGIN, BEGIN WORK or START TRANSACTION (no characteristics; as
// COM_QUERY, or the EXECUTE of such a prepared statement, as sysbench sends
// it) from a session that is not pinned is answered by the proxy with the OK MariaDB
// sends (IN_TRANS and the session's AUTOCOMMIT set, no warnings, and, as
// under the server's default tracking, no session state), and the session
// counts as in a transaction from then on (pinned for it, IN_TRANS in its
// OKs, PinnedSessions), though no backend holds it yet. The transaction's
// first statement takes a backend and BEGIN goes just before it, after any
// replay (which may set the isolation level it starts with): in the same
// write when the statement is side-effect free, BEGIN's OK consumed; else
// alone, the statement once BEGIN succeeded. A BEGIN the server refuses
// answers the statement with its ERR (a batched SELECT's response is
// dropped) and stays deferred, so a write never runs outside the
// transaction. COMMIT or ROLLBACK (without AND CHAIN or RELEASE) of a
// transaction that ran nothing is answered by the proxy, as is another
// BEGIN; a client that leaves, or is killed, leaves nothing on a server.
// In sql_mode ORACLE (as tracked), BEGIN goes to the server.
//
// After each response the proxy decides whether the backend can go back. A
// session is pinned while the server reports a transaction (IN_TRANS), while
// autocommit is off, after LOCK TABLES or FLUSH TABLES ... WITH READ LOCK
// (until UNLOCK TABLES), after GET_LOCK, user variables (@x, :=), CREATE
// TEMPORARY TABLE, SQL_CALC_FOUND_ROWS or text PREPARE (until the session is
// reset), while a cursor is open, while a LOAD DATA LOCAL transfer runs,
// after a SET it cannot replay, and after the server reported a change it
// does not replay. Pins are counted by reason (Stats.Pins).
//
// Instead of pinning, the proxy tracks and replays: the default schema
// (USE, COM_INIT_DB, the handshake's database; a session with none gets a
// backend with none, cleared by COM_CHANGE_USER as nothing cheaper clears
// it), the character set (the
// collation named in the handshake or in COM_CHANGE_USER, any of the
// server's whose character set a client may use, listed in collations.go;
// others fall back to the default, as on the server; SET NAMES, SET
// CHARACTER SET, character_set_client, character_set_results,
// character_set_connection, collation_connection),
// multi-statements (the client's capability and COM_SET_OPTION), and these
// session variables: autocommit, sql_mode, time_zone, the transaction
// isolation level and read-only flag (tx_isolation/transaction_isolation,
// tx_read_only/transaction_read_only, SET SESSION TRANSACTION ...),
// wait_timeout, interactive_timeout, net_read_timeout, net_write_timeout,
// sql_select_limit, max_statement_time, max_execution_time,
// group_concat_max_len, innodb_lock_wait_timeout, lock_wait_timeout,
// lc_time_names, foreign_key_checks, unique_checks, sql_auto_is_null,
// sql_safe_updates, sql_big_selects, max_join_size, sql_notes, sql_warnings,
// sql_quote_show_create, div_precision_increment, default_storage_engine,
// default_week_format, big_tables, sql_buffer_result, max_sort_length,
// sort_buffer_size, join_buffer_size, tmp_table_size, max_heap_table_size,
// optimizer_switch, optimizer_search_depth and long_query_time. Values must
// be literals (numbers, strings, words such as ON or DEFAULT); anything else
// pins. Before a command runs on a backend in another state, the proxy sends
// COM_INIT_DB, one combined SET and COM_SET_OPTION as needed, consuming
// their responses; if one fails the client gets its ERR and the
// backend is closed (its state is unknown), except for ERR 1049 to
// COM_INIT_DB: the server keeps the connection and its previous schema, so
// the backend stays. They go in the same write as the command when the
// command changes nothing wherever it runs (sideEffectFree in readonly.go:
// a single SELECT with no locking clause, INTO, user variable, or call of
// anything but a short list of pure built-ins; or EXECUTE of such a
// statement) and the session holds no state on the backend: should one
// fail, the command's response is read and dropped, the client gets the
// error it would have got, and a backend that stays is reset. Ahead of any
// other command they go one at a time, each after the previous one's
// response, so a failed COM_INIT_DB never lets an INSERT run in another
// session's schema. A schema is checked lazily: USE of a missing database
// fails at once, but a missing database named in the handshake (or one
// dropped since) fails at the first command with 1049, after which the
// session has no schema, as a server session whose schema was dropped.
// Each loop remembers such a 1049 for a second: a login naming that
// schema meanwhile is refused with 1049 (42000) "Unknown database" as the
// server would, without a backend.
//
// LAST_INSERT_ID() is per session, as on a direct connection. The server
// changes it only when it generates an id (an INSERT with an explicit id
// reports that id in its OK packet and leaves LAST_INSERT_ID() alone) or
// through LAST_INSERT_ID(expr), so the OK packet cannot tell: each session
// keeps its value, and each backend the value its server holds when the
// proxy knows it. Before a statement that reads it or may change it (the
// function in any expression, @@last_insert_id, @@identity; INSERT,
// REPLACE, LOAD; CALL and EXECUTE, whose text the proxy does not see) on a
// backend holding another value, DO LAST_INSERT_ID(v) puts the session's
// back. After one, the proxy asks SELECT LAST_INSERT_ID() before the
// backend serves anyone else, unless the answer is certain: a plain
// INSERT, REPLACE or LOAD whose OK reports no id, or the session's own,
// left the value as it was. A failed statement that may have changed it
// leaves the backend's value unknown and the session's as it was.
//
// Timeouts that would let the server drop a pooled connection have floors:
// wait_timeout and interactive_timeout 3600 s (an idle pooled backend is
// pinged every Config.HealthInterval, but one held for a session's
// diagnostics idles as long as its client), net_read_timeout 30 s and
// net_write_timeout 60 s (the server's defaults; less breaks a backend
// under a slow client or a LOAD DATA LOCAL transfer). A client may set any
// value for its session: the SET it sent is forwarded with values below a
// floor raised to it, the replay SET does the same, and SELECT @@var (also
// @@session. and @@local., a list of such columns with optional AS
// aliases) of those four is answered by the proxy from the session's value
// once the session set one. SHOW VARIABLES, @@var inside larger
// expressions and SETs the proxy pins on instead of tracking show or apply
// the backend's value.
//
// CONNECTION_ID() answers the session's id everywhere: SELECT
// CONNECTION_ID() alone is answered by the proxy, and in any other
// COM_QUERY or COM_STMT_PREPARE text each call (outside strings and
// comments) is replaced by CAST(id/*the call as written*/ AS UNSIGNED),
// the server naming an unaliased column after that text, and relayed
// column definitions get the call's text back in its place (a prepared
// statement with the call is the session's own, not shared through the
// PREPARE cache). Not inside the string literal of PREPARE ... FROM or
// EXECUTE IMMEDIATE, nor in stored programs. SHOW PROCESSLIST and
// information_schema.PROCESSLIST are the server's: they list the backends'
// threads under the service account, and no row has a session's id (a
// view of the proxy's sessions is not implemented); IS_USED_LOCK() too
// answers a backend's thread id, so it never equals CONNECTION_ID().
//
// The proxy answers itself: SELECT CONNECTION_ID() (its own session id),
// SELECT LAST_INSERT_ID() (the session's value, see below), KILL
// [CONNECTION|QUERY] id, KILL [CONNECTION|QUERY] CONNECTION_ID() and
// COM_PROCESS_KILL for proxy session ids (the target may live on another
// loop; only sessions of the caller's own account unless it is an admin,
// any other id gets 1094 exactly as one that does not exist). KILL
// [CONNECTION] closes the target session; of the session's own id it
// answers ERR 1927 (70100) "Connection was killed" first, as the server.
// KILL QUERY cancels the statement the target runs on a backend, which
// answers it ERR 1317 (70100) and the session stays usable: the server's
// KILL QUERY is sent on one of the N connections (waiting for one like a
// command), only if the target still runs that command then, and the
// target's backend goes back to the pool only once the server has
// answered the KILL, so the kill cannot hit another session's next
// statement (kill.go); of an idle session it does nothing, of the
// session's own id it answers 1317. KILL QUERY ID, KILL USER and KILL with
// an expression get 9005. COM_PING,
// COM_QUIT, COM_SET_OPTION, COM_RESET_CONNECTION and COM_CHANGE_USER (the
// session is reset; a pinned backend is reset with COM_RESET_CONNECTION, or
// COM_CHANGE_USER in MySQL 5.5 mode, before it goes back).
//
// Prepared statements have proxy-side ids per session. A statement is known
// by its schema and text: each loop caches PREPARE responses so a repeated
// PREPARE needs no backend, and each backend keeps up to
// Config.MaxStmtsPerBackend statements (least recently used closed with
// COM_STMT_CLOSE). A backend closes a statement as soon as no session of
// its loop holds that schema and text (idle backends at once, busy ones
// when next granted; stmtclose.go), so statements clients closed do not
// count against the server's max_prepared_stmt_count; a PREPARE that still
// meets ERR 1461 is retried once after its backend closed the statements
// nobody there holds, or else its least recently used half (their holders
// prepare them again lazily). EXECUTE prepares lazily on the backend that runs it (in
// the statement's schema), rewrites the statement id in place, adds the
// parameter types when the client relies on types that backend's statement
// has not seen, and replays buffered COM_STMT_SEND_LONG_DATA first (a
// session may hold at most 64 MiB of long data until its EXECUTE runs;
// beyond that the EXECUTE gets 1105 (HY000), as MariaDB answers long data
// over max_allowed_packet). Every packet the proxy writes, replayed ones
// included, is framed by mysqlwire: a payload of 16 MiB or more goes as
// 0xFFFFFF-byte packets and a shorter last one, so no part of a client's
// data can reach the server as a command of its own. An
// EXECUTE that opens a cursor pins the session until the cursor is
// exhausted, reset or closed.
//
// # Identities
//
// A backend connection is logged in as one server account, its identity
// (identity.go; the pool sees it as the backend's pool.Class), and a
// session runs only on a backend of its own identity. With
// Config.Identity = IdentityAccount (the default) a session's identity is
// its own account: the proxy keeps SHA1(password), which the client's
// successful mysql_native_password login yields (the answer XOR
// SHA1(nonce || the stored SHA1(SHA1(password)))) and which answers any
// server's native scramble. caching_sha2_password's fast path would yield
// SHA256(password) the same way, but MariaDB (10.11 included) has no
// caching_sha2_password on the server side to use it with, and a MySQL
// server's full authentication needs the password itself; so in this mode
// every client is asked for mysql_native_password (an auth switch for a
// client that offers caching_sha2_password; every account alike, so the
// plugin asked for tells nothing about the account). The account must
// exist on the server, for the proxy's host, with the same password and
// mysql_native_password. An account whose line has backend=B runs as B
// instead, with backend-password-file's password (B = Config.User without
// a file: the service account); so does, with IdentityService, every
// account without backend=, as the service account (one application whose
// accounts exist only in the users file). The identity is settled at the
// account's first login and kept on its User (one per users-file load):
// SHA1 of the stored hash's preimage is one value, so later logins agree.
// Identities are told apart by account name and SHA1(password): a client
// that logs in as the service account itself runs on the backends as they
// are.
//
// Backends log in as the service account (Config.User) when they connect.
// A waiter carries its session's identity as its pool.Class: an idle
// backend of that identity is taken first, else the one idle longest, and
// the exchange's first step (opIdentity) changes it with COM_CHANGE_USER,
// after which the rest of the plan is made as for a fresh connection
// (COM_CHANGE_USER resets the server session: schema, variables,
// statements, diagnostics) and the session's state is replayed as after
// any reset. Changes are counted (Stats.IdentitySwitches). When every
// backend is busy, one that frees goes to a waiter of its identity if the
// pool's scheduler finds one among the next waiters (pool.ClassFinder; the
// FIFO and the fair scheduler look 16 deep, passing the head over at most
// 4 times in a row):
// two accounts of 8 clients each on N=4 changed identity before about half
// of their statements with plain arrival order, and before about a tenth
// with it (TestIdentityInterleaved, a loaded 2-core machine). A server that
// refuses the change (no such account, another password, another plugin)
// gets its ERR relayed to the client, which is disconnected as at a failed
// login; the backend is closed (its session belongs to no account now) and
// reconnects as the service account. For a second after such a refusal a
// login of that account is refused at the proxy with 1045 (28000) "Access
// denied for user 'x' on the database server: it refused the account less
// than a second ago", so a client retrying in a loop costs a backend
// reconnect at most once a second. Prepared statements, on backends and
// in each loop's PREPARE cache, are keyed by identity as well as schema
// and text: a PREPARE the server answered for one account is never
// answered to another from the cache. A KILL QUERY is sent as the
// victim's account (an account may kill its own threads), on a backend
// that changes to it first if need be. With IdentityAccount the service
// account needs no privilege beyond logging in: no client statement runs
// as it. Backends idle as a client's account count as that account's
// connections on the server (max_user_connections, the processlist). The
// preference for a backend of the waiter's identity holds within a loop:
// a loop with an idle backend of another identity converts it rather than
// steal a matching one from another loop.
//
// A derived SHA1(password) is a live secret: it is never logged (an
// identity prints as its account name), never in Stats or /status, and
// lives only in this process's memory, one per account and password for
// as long as the process runs. A process that takes over in a
// zero-downtime upgrade does not receive it: the clients it serves log in
// to it, which derives it again.
//
// # Admin statements
//
// A session running as an account that others share (the service account,
// a backend= mapping) would act for all of them with a statement acting on
// the whole server or on that account: the proxy
// refuses it with ERR 1227 (42000) "Access denied; you need (at least one
// of) the X privilege(s) for this operation" unless the account has the
// users-file field admin. A session running as its own account gets the
// server's verdict on them, as on a direct connection: the server checks
// its grants, and what it does acts on its own account only. Two kinds stay
// refused to every account without admin whatever its identity, because
// the server does not report the locks they may take and a backend must
// not go back to the pool holding one: BACKUP STAGE/LOCK, and dynamic SQL
// whose text the proxy cannot see (below). The list
// (adminStatements and stmtPrivilege in sqlscan.go
// hold the list: SET PASSWORD, CREATE/ALTER/DROP/RENAME USER, CREATE/DROP
// ROLE, SET DEFAULT ROLE, GRANT, REVOKE, SET GLOBAL/PERSIST/PERSIST_ONLY and
// @@global./@@persist. targets anywhere in a SET list, SET GLOBAL
// TRANSACTION, SHUTDOWN, RESTART, INSTALL/UNINSTALL, every FLUSH and RESET,
// CHANGE MASTER/REPLICATION, START/STOP SLAVE|REPLICA, PURGE LOGS,
// CREATE/ALTER/DROP SERVER, BACKUP STAGE/LOCK, BINLOG, CREATE FUNCTION ...
// SONAME; COM_REFRESH and COM_DEBUG). Every statement of a multi-statement
// COM_QUERY is checked, as are COM_STMT_PREPARE's text and the string
// literal of PREPARE ... FROM and EXECUTE IMMEDIATE. Unlike a direct
// connection, dynamic SQL whose text the proxy cannot see (PREPARE s FROM
// @v, EXECUTE IMMEDIATE with any expression but one string literal) is
// refused too for accounts without admin. So is a CREATE or ALTER of a
// stored program (procedure, function, trigger, event, package) with an
// admin statement anywhere in its definition: its body runs later with the
// definer's rights. Known gap of shared accounts: programs that already
// exist on the server (CALL of a procedure, triggers, events) run with
// their definer's privileges, which the proxy cannot see into; a session
// running as its own account is checked by the server.
//
// # Errors the proxy sends
//
//   - 1040 (08004) "Too many connections": the first packet to a client
//     when Config.MaxClients clients are logged in, or when
//     Config.MaxPendingLogins clients are connected and not logged in yet;
//     and the answer to a login that would take the logged-in clients over
//     Config.MaxClients (others logged in first).
//   - 1045 (28000) "Access denied for user ...": unknown user or wrong
//     password; and, at a session's first command, the server's own 1045
//     (or other ERR) refusing the COM_CHANGE_USER to the session's account,
//     relayed, or the proxy's "Access denied for user 'x' on the database
//     server: ..." when a server asks that account for what a derived
//     credential cannot give (caching_sha2_password's full
//     authentication); the client is disconnected. An unknown name goes through the same exchange as an
//     account (with both hashes) and a wrong password: the same auth switch
//     with the nonce where the client's plugin calls for one, the same hash
//     work, the same ERR with the same sequence id, so the answers do not
//     tell which accounts exist.
//   - 9001 (HY000) "Timed out waiting for a backend connection ...": the
//     command waited Config.QueueTimeout for a backend; the client stays
//     connected and may retry.
//   - 9003 (HY000) "No backend connection is available ...": every
//     backend connection is down and the last attempt to log one in
//     failed; sent at once (and to commands already waiting) instead of
//     after Config.QueueTimeout.
//   - 9004 (08S01) "Lost connection to the backend server during query": the
//     backend broke before any of the response was relayed (otherwise, or
//     when the session was pinned, the client is disconnected).
//   - 9005 (0A000): a KILL form the proxy does not support.
//   - 1203 (42000) "Tenant 'T' already has more than 'max-clients' active
//     connections": a login (or COM_CHANGE_USER) beyond its tenant's
//     max-clients; the connection is closed.
//   - 1226 (42000) "Tenant 'T' has exceeded the 'max-qps' resource
//     (current value: N)": a command beyond its tenant's token bucket; the
//     session stays usable.
//   - 9006 (HY000) "Too many commands of tenant 'T' are waiting ...": a
//     command that would wait while its tenant's max-queued wait already;
//     sent at once, the session stays usable.
//   - 9007 (42000) "max_statement_time is limited to S s for tenant 'T'
//     ...": a statement that could raise or lift the tenant's
//     max-statement-time. A statement that runs longer than it gets the
//     server's own 1969 (70100) "Query execution was interrupted
//     (max_statement_time exceeded)".
//   - 1227 (42000) "Access denied; you need ... privilege(s)": an admin
//     statement from an account without admin (see Admin statements).
//   - 1053 (08S01) "Server shutdown in progress": Drain's deadline has
//     passed; sent to a session at its next idle point (as the answer to
//     its next command, sequence id 1) before it is closed, to a command
//     still waiting for a backend, and as the first packet to a client
//     accepted after the deadline.
//   - 1153 (08S01) "Got a packet bigger than 'max_allowed_packet' bytes":
//     a packet over 64 MiB, or, before login, a handshake response or auth
//     switch answer over 64 KiB (also the auth answer of COM_CHANGE_USER);
//     sent as soon as the header announcing it arrives, with the sequence
//     id after the header's (as MariaDB does), and the connection closed.
//   - 1049 (42000) "Unknown database '...'": a login naming a schema the
//     server called unknown less than a second ago (see Session state).
//   - 1047 (08S01) "Unknown command" / "Malformed packet", 1243, 1421, 1461,
//     1094 as a server would send them.
//
// # Operations
//
// Counters (Stats, per loop, with the pool's pool.Stats, summed by
// Proxy.Stats) are plain atomics that only their loop writes: commands by type, a latency and a queue-wait
// histogram with fixed buckets (LatencyBuckets), ERR packets by code (a
// fixed table, ErrorCodes, plus "other"), bytes to and from clients and
// backends, prepared statements open on backends, pins by reason, health
// checks and reconnects, client write timeouts. Per-account counters
// (Proxy.UserStats, one set per loop, summed when read) exist only for
// accounts of the users file. An exporter reads them when scraped
// (scalestack mysqlproxy exports the per-account ones only with
// --per-user-metrics: their labels are account names).
//
// Sizing: a few backend connections per database core; more only add
// server threads competing for the same cores. On a host the proxy shares
// with the database, one loop rather than two: cross-loop stealing and
// donation cost more there than a second loop gains. The runs behind both
// are in bench/results/sweep-20261125-1758.md (its notes). (Since then
// saturated loops keep their backends instead of trading them, and a
// second loop gains, though less than the CPU it takes:
// bench/results/loops-20261206-handover.md.)
//
// Slow clients: a response is relayed into the client connection's output
// buffer; once that holds more than its high-water mark (1 MiB) the backend
// feeding it stops being read (the server then blocks in its own write)
// until the client has taken it down to the low-water mark (256 KiB). A
// client whose output stays over the high-water mark with none of it taken
// (conn.Delivered: bytes sent less what the kernel still holds) for
// Config.ClientWriteTimeout (30 s; checked every eighth of it, so the cut
// comes 1 to 1 1/8 timeouts after the last byte taken) is cut off with a
// TCP reset (Stats.ClientWriteTimeouts); the backend it held mid-response
// is closed, its state being unknown, and reconnects, so the pool is back
// to N within a reconnect. A client that reads at all, however slowly, is
// not cut off, and holds its backend as long as its response lasts.
//
// While a backend is paused behind a slow client the proxy does not read
// it, so what the server does meanwhile is seen only as TCP allows. With
// epoll a reset (RST) from the server, or any socket error, is noticed at
// once: the backend is dropped and reconnects, and the client is
// disconnected (half its response was relayed). A FIN (the server closed,
// for example after its net_write_timeout) queues behind the response data
// the proxy has not read and is seen only once the client has drained
// enough for reading to resume, or never if the client stops reading, in
// which case the client write timeout frees the backend. With io_uring a
// paused backend has no request in the kernel, so not even a reset is
// noticed until reading resumes or the client write timeout fires.
//
// Pipelining (Config.PipelineDepth K, --pipeline-depth; off by default):
// a command that would wait for a backend (none idle on its loop), is one
// plain SELECT (pipelineSafe in readonly.go: an allowlist; no locking
// clause, INTO, := or @variables, sequences, PROCEDURE, multi-statements,
// diagnostics, and no call but a short list of pure builtins, so stored
// functions, SLEEP, GET_LOCK, LAST_INSERT_ID(), CONNECTION_ID() are out)
// or the EXECUTE of a statement whose text is, already prepared there,
// rides a busy backend of its loop whose exchange runs such a command for
// a session in the same state (identity and flags, tenant, schema,
// character set, variables, multi-statements: makePlan would plan nothing
// but opMain): it is written at once, behind what that backend runs, and
// the backend's FIFO of exchanges hands each response to its session in
// order (pipeline.go). Commands already queued for a backend ride too when
// a pipeline opens or makes room (up to 32 looked at each time). A session
// still has one command in flight. Bounds: at most K commands in flight on
// a backend; none joins one paused for a slow client or with a rider's
// client over its high-water mark, nor one whose response being read has
// been awaited longer than Config.PipelineMaxWait (10 ms: a long
// statement runs there, and riders would wait for it, where the next free
// backend may come sooner); once a backend has taken K-1 riders
// while commands that cannot ride wait, or 4K riders in any case, it takes
// no more and goes back to the pool when drained. The backend's owner (the session the pool
// granted it to) lets go of it when its own command ends, and the backend
// is released once its last rider's response is read; the owner's tenant
// is charged for the whole time. Server-side enforcement: the first
// rider's write starts with SET SESSION TRANSACTION READ ONLY, recorded
// as tx_read_only=1 in the backend's known state, so a write the
// allowlist misjudged fails with 1792 (25006) and a later session that is
// not read-only gets @@session.tx_read_only=DEFAULT replayed (opVars)
// before its command. A backend that breaks: the owner is told as before
// (Lost), a rider whose response had begun is disconnected, the others
// get 9004 (08S01), and nothing is re-run elsewhere. A slow reader pauses
// its backend as before, so the riders behind it wait until it reads or
// the client write timeout cuts it off; its response is then read and
// dropped and the rest go on on the same backend. A session that leaves
// mid-pipeline has its response dropped the same way. What pipelining
// gives up: a session whose pipelined statement left warnings cannot read
// them with SHOW WARNINGS (its backend is not kept for it); KILL QUERY of
// a pipelined statement does nothing (it could hit the next one); a
// statement that a server report pins (a stored function called through
// a view that changed session state) closes its client, and the backend
// is reset once drained. Counters: Stats.Pipelined and a histogram of the
// commands in flight on the backend when one was pipelined
// (Stats.PipelineDepth, PipelineDepthBuckets). It is off by default for
// those trade-offs, although oltp_point_select with N=4 and K=8 ran 1.37
// to 1.59 times proxy-epoll's QPS in two of three runs on a loaded 2-core
// host (1.03 in the third, at load 250), with MariaDB's context switches
// per query down from about 0.9 to 0.15-0.35 in all three
// (bench/results/pipeline-point-select*.md): a read-heavy load of short
// SELECTs should turn it on.
//
// Idle backends are pinged every Config.HealthInterval; one that does not
// answer within Config.ConnectTimeout is dropped and reconnects. Proxy.Ready
// fails while fewer than BackendConns backends are logged in (one count
// the pool keeps, which a backend moving between loops leaves alone), and
// while a backend has waited Config.BackendStallTimeout for the server's
// answer to a request with nothing from the server meanwhile (a hung
// server; also a statement that runs that long before its first row).
// Waiting stops counting while reading is paused behind a slow client and
// during a LOCAL INFILE upload (the client's turn).
//
// Config.Targets lists several servers that can each run any statement (a
// multi-primary cluster); the N connections are split between them by
// weight, and any connection serves any session. Read-only targets are
// recorded but get no connections: there is no read/write splitting yet.
//
// Proxy.Drain shuts down gracefully, for a restart or a hand-over of the
// listening sockets to a new process. Accepting stops at once. For a grace
// period sessions are served as usual (clients that connect, run a few
// statements and leave never notice). At its deadline each session is
// closed at its next idle point with ERR 1053: an idle one at once, pinned
// or not (an open transaction is rolled back when its backend is reset),
// one with a statement on a backend as soon as the response has been
// relayed in full; a command still queued for a backend is answered ERR
// 1053. DrainHardCut (1 s) after the deadline whatever still runs is cut
// off, and the backends those sessions held are closed because their state
// is unknown. Once no session is left, reconnecting stops and each backend
// is closed with COM_QUIT as soon as it is free (never under a session).
// Proxy.Ready fails from the moment Drain is called.
// The work is done by the loops, each asked through its control inbox;
// a coordinator goroutine only reads their gauges.
//
// Clients that have not logged in are strangers: each may have at most one
// incomplete login packet of up to 64 KiB buffered, and all of them
// together at most Config.LoginInputBudget (16 MiB by default; the buffers
// are counted by the memory they occupy). A client whose buffer would take
// the total over it is disconnected without a packet, so a storm of
// sockets that send part of a handshake and stall cannot make the proxy
// hold more than that, while real clients, whose handshake is consumed as
// it arrives, are not affected. Once such a storm has gone (the budget was
// at least a quarter full and is back under a sixteenth), a goroutine
// outside the loops runs a garbage collection and debug.FreeOSMemory, at
// most every 5 s: the buffers wait in the buffer pools for two collections,
// and an idle Go program neither collects nor returns memory to the
// operating system for minutes.
//
// Failed logins (ERR 1045) and clients whose connection failed during
// login are logged through Config.Logf at most once a second each, as "N
// failed logins in the last second, last: user 'x' from HOST" (and "N
// clients closed during login ..."): the first event after a quiet second
// at once, the rest of the second when it ends.
//
// Clients still logging in do not count against Config.MaxClients but
// against Config.MaxPendingLogins (1000 by default; one count shared by the
// loops, updated once per client and login): sockets that connect and never
// log in are bounded there, until the login timeout closes them, and cannot
// lock logged-in clients out.
//
// SetUsers, SetMaxClients, SetMaxPendingLogins, SetQueueTimeout and
// SetClientWriteTimeout change those settings while the proxy runs
// (atomics read by the loops): new
// logins, new clients, new waits and the next client write check see the
// new values; nothing already running is disturbed.
//
// # Embedded callers
//
// Modules of the same process that are not MySQL clients (the memcached
// module's MySQL table back end, the HTTP SQL gateway) run statements
// through the same N backends with embed.go's API, on the loop they run
// on, with no goroutine and no connection of their own:
//
//	st, err := p.PrepareStmt(loop, schema, "SELECT v FROM kv WHERE k = ?")
//	r := &mysqlproxy.Request{Account: "alice", Stmt: st, Params: params, Sink: sink}
//	r.Start() // then sink.Column for each column, sink.Row per row, sink.Done
//
// PrepareStmt checks the text once, before any backend sees it: one
// statement of the kinds SELECT, WITH, VALUES, TABLE, INSERT, UPDATE,
// DELETE, REPLACE, DO, SHOW, DESCRIBE, EXPLAIN, without user variables,
// GET_LOCK, SQL_CALC_FOUND_ROWS, temporary tables, locks or diagnostics
// reads. There is no session to keep state across statements, so
// transactions (BEGIN, START, COMMIT, ROLLBACK, SAVEPOINT, RELEASE, XA) are
// refused with ErrTransactionRefused, 9005 (0A000), and other statements
// with 9005 (0A000) too; each statement runs alone in autocommit mode.
//
// A Request names the users-file account it runs for, as a client login of
// that account (an unknown account gets ERR 1045). It runs as the
// account's identity, as a session would (embedIdentity): the one its
// clients' logins derived, its backend= mapping, or the service account in
// service mode; an account whose password the proxy has not learned yet
// runs only when the caller passes Request.Password (the HTTP gateway
// does, from the credentials it checked), else gets ERR 1045 rather than
// the service account's rights. Its waiter carries that identity's
// pool.Class, and a backend of another account is changed with
// COM_CHANGE_USER first (eIdentity). It waits in its account's tenant's
// queue, so the tenant's weight and min- and max-backends apply; its
// max-qps, max-clients and max-statement-time (rules of sessions) do not
// yet. It waits for a backend in the loop's
// queue like a session's command (the same --queue-timeout, ERR 9001 and
// 9003), then brings the backend to the embedded state: the statement's
// schema (COM_INIT_DB, or COM_CHANGE_USER when it has none and the backend
// has one), the server's default variables and the proxy's character set
// (one SET when a session left others), session tracking on. The
// statement is prepared once per backend (the backends' statement cache,
// shared with sessions, bounded by --backend-max-stmts) and run with
// COM_STMT_EXECUTE, its parameter types always bound. The response goes
// to the Sink as it arrives: Column per column definition, Row per row
// (decoded from the packet, valid during the call: nothing is buffered),
// then Done with nil or an *SQLError (the server's code, SQLSTATE and
// message, or the proxy's 9001, 9003, 9004). A Sink whose consumer is
// slow returns false from Row: the backend's socket is not read (it stays
// held) until Request.Resume. Request.Cancel leaves the queue, or closes a
// backend in the middle of a response (it reconnects, as when a client
// leaves mid-response). A row of 16 MiB or more closes the backend.
//
// After the statement the backend goes back to the pool, reset first
// (COM_RESET_CONNECTION) when the server reported a session state change
// or an open transaction, or answered with an ERR (a trigger or stored
// function may have changed session state before failing, and an ERR
// carries no report); its diagnostics are marked as nobody's session's
// and LAST_INSERT_ID() as unknown when the statement may have changed it,
// so sessions that read them later get their own.
//
// # Users file
//
// One account per line, '#' starts a comment:
//
//	NAME:native=HEX40:sha2=HEX64[:admin][:require-tls][:tenant=T][:backend=B][:backend-password-file=F]
//
// This is the one grammar of the proxy's accounts, shared by identity,
// TLS and tenancy. Fields are key=value except admin and require-tls,
// which take no value; a field given twice, an unknown field or an empty
// one is an error naming the line (only native and sha2 may be empty: an
// account without a password). native is hex SHA1(SHA1(password))
// (mysql_native_password; the '*'-prefixed form of mysql.user is accepted
// too), sha2 is hex SHA256(SHA256(password)) for the caching_sha2_password
// fast path. admin lets the account run the admin statements and KILL any
// session. require-tls refuses a login that is not over TLS with ERR 1045
// (28000), after the password check, as MariaDB answers an account created
// with REQUIRE SSL (Config.RequireTLS does it for every account; see
// TLS). tenant names the group of accounts the account is
// scheduled with (letters, digits, '_', '-', '.'; without it the account
// is its own tenant; see Tenants). backend and backend-password-file map the client to another
// server account (its password the first line of F, relative to the users
// file's folder, read with the same checks as the users file; see
// Identities). `scalestack passwd` prints a
// line with any of these fields. Plain passwords are never stored.
//
// LoadUsers (for the users file and each backend-password-file) and
// ReadPasswordFile refuse a file that its group or every account may
// write (mode & 0022, checked on the open file, after symlinks), with an error naming the file and its mode: whoever can
// write the users file decides who logs in, whoever can write the
// password file what the proxy logs in with. Group-readable is allowed.
// A reload that meets such a users file fails and keeps the accounts it
// had.
//
// # Tenants
//
// Every session belongs to its account's tenant (User.TenantName) and
// waits for backends in that tenant's queue: package pool's weighted fair
// queueing (its documentation has the design and the tolerance across
// loops; Config.FIFO restores arrival order). Config.Tenants holds the
// rules, SetTenants changes them live; tenants.go says what each rule
// does here. A session's tenant is fixed at login and COM_CHANGE_USER.
// Commands the proxy answers itself take no max-qps token and never wait.
// The tenant's max-statement-time is the session's tracked
// max_statement_time from its login (or from the next command after a
// reload changed the rule), so the replay SET carries it to whichever
// backend runs the session's next command, prepared statements included;
// a client may lower it with a plain SET. Counters per tenant
// (Proxy.TenantStats, pool.TenantStats per loop) are exported as
// scalestack_mysqlproxy_tenant_* series.
//
// # TLS
//
// Towards clients (Config.TLS): the greeting offers CLIENT_SSL, and a
// client's SSLRequest upgrades its connection in place on its loop
// (conn.StartTLSServer: the ClientHello pipelined behind the request goes
// to the handshake, which runs on the TLS handshake pool); the
// HandshakeResponse then comes over TLS with sequence id 2. The login
// timer keeps running through the handshake, and the handshake has its own
// timeout, so a client that sends SSLRequest and stalls is closed at the
// earlier of the two, holding only its pending-login slot meanwhile.
// Without Config.TLS an SSLRequest is a bad handshake (ERR 1043).
// caching_sha2_password's fast path needs no TLS; when it fails over TLS
// the proxy asks for the full password (AuthMoreData 0x04), as MySQL does,
// and checks the clear password against the sha2 hash (an unknown name
// takes the same path). Without TLS a failed fast path is refused at once
// with ERR 1045: the proxy has no RSA key for the encrypted exchange
// (decrypting on the loop would cost a thousand fast-path checks), and
// since it holds every account's hash, the fast path only fails for a
// wrong password. SHOW [SESSION|LOCAL] STATUS LIKE 'pattern', for a
// pattern that can only match Ssl_ variables, is answered for the client's
// own connection (Ssl_cipher, with Go's name of the suite, and
// Ssl_version; both empty without TLS); the server's other Ssl_ variables
// describe its TLS library, not a connection, and are not listed.
// Counters: Stats.ClientsTLS, Stats.TLSClientsConnected.
//
// Towards backends (Config.BackendTLS): after the greeting, if the server
// offers CLIENT_SSL, the proxy sends SSLRequest and upgrades the
// connection (conn.StartTLSClient), then logs in over TLS; a
// caching_sha2_password full authentication sends the clear password
// there. A server without TLS is a failed login unless
// Config.BackendTLSOptional. A TLS connection cannot be detached, so the
// pool keeps each backend on the loop that opened it (pool.Config.
// Stationary): no stealing or donation between loops, and BackendConns
// must be at least the number of loops.
//
// # Limits
//
// No compression towards clients. The PREPARE cache is per loop
// and not invalidated by DDL. After a statement that left warnings or
// failed, the session keeps its backend until its next command so SHOW
// WARNINGS, SHOW ERRORS and GET DIAGNOSTICS see them (Stats.DiagnosticHolds),
// unless another client needs that backend first. A backend remembers whose
// diagnostics it holds: a session given a backend that holds another
// session's runs its command after a reset (COM_RESET_CONNECTION,
// COM_CHANGE_USER in 5.5 mode), whatever the command: a statement that uses
// no table leaves them in place, and one that pins the session (SET @x)
// would leave them to its SHOW WARNINGS, which no reset may then precede.
// So SHOW WARNINGS, SHOW ERRORS, GET DIAGNOSTICS, @@warning_count and
// @@error_count of a session whose kept backend was taken show none rather
// than another's; ROW_COUNT() and
// FOUND_ROWS() without SQL_CALC_FOUND_ROWS may run on another backend than
// the statement they refer to, and after a statement that may change
// LAST_INSERT_ID() the proxy's SELECT LAST_INSERT_ID() has run since (it
// sets ROW_COUNT() to -1 and FOUND_ROWS() to 1; it uses no table, so the
// statement's warnings stay). A query id (KILL QUERY ID) names a
// backend's statement, never known to the proxy.
// A statement that fails where state may hide (see Session state) loses its
// changes to the session, where a direct connection would keep them. A
// session handles one command at a time; commands
// a client pipelines stay in its connection's input buffer (bounded by the
// connection's input limit) until the current one is answered.
//
// This package must never block a loop, take a lock on the data path,
// allocate per statement in steady state, or trust a length from the wire;
// it imports only the standard library and this module's reactor, conn,
// buffer and mysqlwire packages.
package mysqlproxy
