// Package pool is Scale Stack's MySQL connection-concentrating proxy: many
// client sessions share exactly N backend connections, each of which serves
// a session only for one command's exchange unless the session's state pins
// it.
//
// # Architecture
//
// The N backend connections are opened at start, split across the reactor
// loops, and kept at N: a broken one reconnects with exponential backoff and
// jitter; none is ever added. Each loop owns a shard: its backends, a list of
// idle ones and a FIFO queue of sessions waiting for one, each with its own
// deadline (Config.QueueTimeout, 10 s by default). A loop with waiters and
// no idle backend asks a loop whose (atomic) idle hint is positive for one;
// a loop releasing a backend with no local waiters hands it to a loop whose
// waiting hint is positive. Backends move by conn.Conn.Detach and
// conn.Adopt through the loops' mailboxes, so a backend is only ever touched
// by the loop that owns it and the data path takes no lock.
//
// Responses are relayed packet by packet as they arrive (rows are never
// decoded, result sets never buffered), with the client's sequence ids.
// Backends are opened without CLIENT_DEPRECATE_EOF and CLIENT_SESSION_TRACK,
// and clients are offered only capabilities that every backend honours, so
// no translation is needed.
//
// # Session state
//
// After each response the proxy decides whether the backend can go back. A
// session is pinned while the server reports a transaction (IN_TRANS), while
// autocommit is off, after LOCK TABLES or FLUSH TABLES ... WITH READ LOCK
// (until UNLOCK TABLES), after GET_LOCK, user variables (@x, :=), CREATE
// TEMPORARY TABLE, SQL_CALC_FOUND_ROWS or text PREPARE (until the session is
// reset), while a cursor is open, while a LOAD DATA LOCAL transfer runs, and
// after a SET it cannot replay. Pins are counted by reason (Stats.Pins).
//
// Instead of pinning, the proxy tracks and replays: the default schema
// (USE, COM_INIT_DB, the handshake's database), the character set (the
// handshake collation, SET NAMES, SET CHARACTER SET, character_set_client,
// character_set_results, character_set_connection, collation_connection),
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
// COM_INIT_DB, one combined SET and COM_SET_OPTION as needed, one at a time,
// consuming their responses; if one fails the client gets its ERR and the
// backend is closed (its state is unknown). A schema is checked lazily: USE
// of a missing database fails at once, but a missing database named in the
// handshake fails at the first command.
//
// The proxy answers itself: SELECT CONNECTION_ID() (its own session id),
// SELECT LAST_INSERT_ID() (from the session's last OK packet), KILL
// [CONNECTION|QUERY] id and COM_PROCESS_KILL for proxy session ids (both
// close the target session, which may live on another loop), COM_PING,
// COM_QUIT, COM_SET_OPTION, COM_RESET_CONNECTION and COM_CHANGE_USER (the
// session is reset; a pinned backend is reset with COM_RESET_CONNECTION, or
// COM_CHANGE_USER in MySQL 5.5 mode, before it goes back).
//
// Prepared statements have proxy-side ids per session. A statement is known
// by its schema and text: each loop caches PREPARE responses so a repeated
// PREPARE needs no backend, and each backend keeps up to
// Config.MaxStmtsPerBackend statements (least recently used closed with
// COM_STMT_CLOSE). EXECUTE prepares lazily on the backend that runs it (in
// the statement's schema), rewrites the statement id in place, adds the
// parameter types when the client relies on types that backend's statement
// has not seen, and replays buffered COM_STMT_SEND_LONG_DATA first. An
// EXECUTE that opens a cursor pins the session until the cursor is
// exhausted, reset or closed.
//
// # Errors the proxy sends
//
//   - 1040 (08004) "Too many connections": the first packet to a client
//     beyond Config.MaxClients.
//   - 1045 (28000) "Access denied for user ...": unknown user or wrong
//     password.
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
//   - 1053 (08S01) "Server shutdown in progress": Drain's deadline has
//     passed; sent to a session at its next idle point (as the answer to
//     its next command, sequence id 1) before it is closed, to a command
//     still waiting for a backend, and as the first packet to a client
//     accepted after the deadline.
//   - 1047 (08S01) "Unknown command" / "Malformed packet", 1243, 1421, 1461,
//     1094 as a server would send them.
//
// # Operations
//
// Counters (Stats, per loop, summed by Proxy.Stats) are plain atomics that
// only their loop writes: commands by type, a latency and a queue-wait
// histogram with fixed buckets (LatencyBuckets), ERR packets by code (a
// fixed table, ErrorCodes, plus "other"), bytes to and from clients and
// backends, prepared statements open on backends, pins by reason, health
// checks and reconnects, client write timeouts. Per-account counters
// (Proxy.UserStats) exist only for accounts of the users file. An exporter
// reads them when scraped.
//
// Sizing: a few backend connections per database core. More only add
// server threads competing for the same cores: on a 2-core host shared with
// MariaDB and sysbench, one series of oltp_read_only runs at 8192 clients
// gave about 12,000 QPS with 16 backends, 10,400 with 32 and 7,300 with 128
// (4 were too few: 4,000), and one loop beat two (7,800 with two loops and
// 32 backends): cross-loop stealing and donation cost more there than a
// second loop gains.
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
// Idle backends are pinged every Config.HealthInterval; one that does not
// answer within Config.ConnectTimeout is dropped and reconnects. Proxy.Ready
// fails while fewer than BackendConns backends are logged in.
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
// SetUsers, SetMaxClients, SetQueueTimeout and SetClientWriteTimeout change
// those settings while the proxy runs (atomics read by the loops): new
// logins, new clients, new waits and the next client write check see the
// new values; nothing already running is disturbed.
//
// # Users file
//
// One account per line, '#' starts a comment:
//
//	NAME:native=HEX40:sha2=HEX64
//
// native is hex SHA1(SHA1(password)) (mysql_native_password; the
// '*'-prefixed form of mysql.user is accepted too), sha2 is hex
// SHA256(SHA256(password)) for the caching_sha2_password fast path. Both are
// empty for an account without a password. `scalestack passwd NAME` prints a
// line. Plain passwords are never stored.
//
// # Limits
//
// No TLS and no compression towards clients. CLIENT_FOUND_ROWS is not
// honoured (backends report affected rows). A session without a default
// schema may run on a backend that has one. The PREPARE cache is per loop
// and not invalidated by DDL. After a statement that left warnings or
// failed, the session keeps its backend until its next command so SHOW
// WARNINGS, SHOW ERRORS and GET DIAGNOSTICS see them (Stats.DiagnosticHolds),
// unless another client needs that backend first; ROW_COUNT() and
// FOUND_ROWS() without SQL_CALC_FOUND_ROWS may run on another backend than
// the statement they refer to. KILL QUERY closes the target session like KILL CONNECTION.
// State changed inside stored procedures or through SET in a prepared
// statement is not seen. A session handles one command at a time; commands
// a client pipelines stay in its connection's input buffer (bounded by the
// connection's input limit) until the current one is answered.
//
// This package must never block a loop, take a lock on the data path,
// allocate per statement in steady state, or trust a length from the wire;
// it imports only the standard library and this module's reactor, conn,
// buffer and mysqlwire packages.
package pool
