// Package mysqlfake is an in-process, scriptable MySQL/MariaDB server for
// tests: a test double that speaks the client/server protocol well enough
// for go-sql-driver/mysql and for the proxy's backend side, built on
// mysqlwire's server-side builders and parsers (greetings, auth, OK/ERR/EOF,
// column definitions, text and binary rows, prepare OK, COM_* parsers), so
// that nothing about the wire is written twice.
//
// # What it is for
//
// Unit tests of the proxy (package pool/mysqlproxy) that must
// run under a plain `go test` with no database: logins of N backends, the
// state replay the proxy sends (COM_INIT_DB, SET, COM_SET_OPTION, lazy
// COM_STMT_PREPARE, COM_RESET_CONNECTION or COM_CHANGE_USER, COM_PING), and
// the faults a real server makes hard to provoke on cue: a slow or hung
// statement, a connection reset in the middle of a result set, an error on a
// SET, a login refused. Every connection records its session state (State:
// schema, variables set with SET, user variables, autocommit and
// transaction flags, prepared statements) and a bounded log of the commands
// it received (Conn.Log, Server.Log), so a test can assert exactly what
// reached the server: which SETs a replay sent, that a smuggled statement
// did not arrive, how many COM_PINGs a health check made.
//
// # What it must never be
//
// It is never the only proof that the proxy works with a real server. It
// knows only the SQL a script teaches it plus a handful of built-ins; it does
// not execute statements, enforce privileges, run multi-statements or lock
// anything, and its idea of the protocol is mysqlwire's, so a
// misunderstanding shared by mysqlwire and the double passes here and fails
// against MariaDB. The end-to-end suites against a real MariaDB (and MySQL
// 5.5 mode against a real server) stay; a behaviour seen only through this
// double is a hypothesis about the server, not a fact.
//
// It is test code: one goroutine per connection over net.Conn, locks,
// allocations. Never import it from production code.
//
// # Protocol coverage
//
// Greeting with configurable capabilities (MariaDB 10.11-like by default;
// MySQL55 without DEPRECATE_EOF, session tracking, CONNECT_ATTRS or
// COM_RESET_CONNECTION); mysql_native_password and caching_sha2_password
// logins (fast path, and full authentication with the RSA public key when
// Account.FullAuth), auth switch to the account's plugin, ERR 1045 28000 for
// a wrong password and 1049 42000 for an unknown schema; COM_QUERY,
// COM_INIT_DB, COM_PING, COM_QUIT, COM_RESET_CONNECTION, COM_CHANGE_USER,
// COM_SET_OPTION, COM_STMT_PREPARE/EXECUTE/CLOSE/RESET/SEND_LONG_DATA/FETCH
// (read-only cursors); sequence ids are checked (ERR 1156 and a close on a
// gap) and payloads of 16 MiB and more are split and joined both ways.
// Requests are bounded by Config.MaxAllowedPacket (ERR 1153 and a close),
// output is written as it is built (64 KiB at a time), and the logs keep the
// last Config.LogLimit commands.
//
// # Scripting
//
// Handlers are matched against the statement text (trimmed of white space
// and a trailing semicolon), the most recently registered first:
//
//	srv := mysqlfake.Start(t, mysqlfake.Config{
//		Accounts: []mysqlfake.Account{{User: "app", Password: "pw"}},
//		Schemas:  []string{"shop"},
//	})
//	srv.On("SELECT name FROM users WHERE id = ?", mysqlfake.Rows([]string{"name"}, []any{"ada"}))
//	srv.OnPrefix("INSERT INTO orders", mysqlfake.Affected(1, 42))
//	srv.OnRegexp(`^UPDATE stock`, mysqlfake.Fail(mysqlwire.ErLockDeadlock, "40001", "Deadlock found"))
//	srv.On("SELECT SLEEP(10)", mysqlfake.Hang())
//	srv.On("SELECT * FROM big", mysqlfake.Response{Result: rs, Drop: mysqlfake.DropMidResult})
//	srv.OnFunc(func(sql string) bool { return strings.HasPrefix(sql, "CALL ") },
//		func(q mysqlfake.Query) mysqlfake.Response { ... q.Params, q.Conn.State() ... })
//
// The same handler answers COM_QUERY and COM_STMT_EXECUTE of the same text
// (text rows for the one, binary rows for the other); COM_STMT_PREPARE asks
// it with Query.Preparing set to learn the statement's columns. Statements
// no rule takes fall to the built-ins (SET, USE, BEGIN, START TRANSACTION,
// COMMIT, ROLLBACK, SELECT of @@variables, @variables, DATABASE(),
// CONNECTION_ID(), LAST_INSERT_ID(), USER(), VERSION(), literals and ?, DO
// LAST_INSERT_ID(n)), then to Default
// (ERR 1064 42000 unless replaced). A rule registered for a built-in's text
// overrides it, e.g. to make a SET fail.
package mysqlfake
