// Package e2e holds the black-box acceptance tests of `scalestack mysqlproxy`,
// run by `make test`. TestMain builds the scalestack binary once; each test
// runs the proxy as a subprocess on a free loopback port in front of the
// throwaway MariaDB that scripts/mariadb.sh starts (its SCALESTACK_MYSQL_*
// environment, which `make test` exports), and drives it with real clients:
// go-sql-driver/mysql, the `mariadb` command-line client
// (scripts/mysql-cli-session.sh), sysbench, and a small hand-written wire
// client for what no driver lets a test do (closing a socket in the middle of
// a result, sending malformed packets, checking every sequence id).
//
// The tests import nothing from the proxy's packages (pool, mysqlwire, conn,
// reactor): they judge the proxy only by what clients and the server's
// processlist see, so an internal change cannot make them pass by accident.
// Without the MariaDB environment they fail at once. They skip only where
// said below: the comparisons of issue 16's items not fixed yet, and the
// Node.js drivers' test on a machine without Node.js outside CI.
//
// The proxies log in to the shared server as e2e_svc, an account TestMain
// creates, and use schemas named e2e_*: other packages' tests use the same
// server at the same time, and the processlist bounds count e2e_svc only.
// The server-restart test uses a private MariaDB (internal/testutil), since
// stopping the shared one would break the others.
//
// They live outside pool so that `go test ./pool/...` stays the unit layer.
//
// Tests and their bounds (about 3.5 minutes in all on 2 cores, under 5 with -race):
//
//   - TestSysbench1024Clients16Backends: oltp_point_select and oltp_read_only,
//     prepared statements on and off, 1024 threads, 10 s each, through 16
//     backends: no errors or reconnects, processlist never above 16.
//   - TestGoDriver500Goroutines8Backends (and TestGoDriverIOUring, reduced,
//     with --io uring): transactions, prepared statements, multi-statements.
//   - TestSessionIsolation: 1000 concurrent sessions, 100,000 random
//     statements on 4 backends, every answer checked against a per-session
//     model that is first checked against MariaDB itself.
//   - TestSharingProperty (issue 15): short sessions of 16 clients at once
//     on 4 backends mix tracked state with what the proxy cannot see in
//     the text (prepared SET, GET_LOCK and CREATE TEMPORARY TABLE,
//     SELECT @x:=, EXECUTE IMMEDIATE, procedures that SIGNAL, XA),
//     LAST_INSERT_ID(), diagnostics and client aborts; every answer is
//     checked against a per-session model first checked against MariaDB.
//     SCALESTACK_PROPERTY_STATEMENTS sets its length (30,000 by default;
//     the acceptance run is 1,000,000).
//   - TestDocumentedPins: LOCK TABLES, SQL_CALC_FOUND_ROWS, SET
//     TRANSACTION and a schema only the server reports pin as
//     pool/mysqlproxy's documentation says (one backend: another client
//     gets 9001 while the session is pinned).
//   - TestChaosClientsKilledMidResult, TestChaosServerRestart,
//     TestMalformedClientPackets: vanishing clients, a server restart under
//     load, and bytes no client should send.
//   - TestMariaDBCLI: the mariadb client's session through the proxy prints
//     what it prints against MariaDB, apart from the connection id.
//   - TestMySQL55Mode, below.
//   - Issue 16 ("behave like the server"): the same statements sent to
//     MariaDB directly (as the service account) and through the proxy, the
//     answers compared. TestDriverCompat drives go-sql-driver with its
//     connector options (collation, charset, maxAllowedPacket 40 MiB,
//     clientFoundRows, multiStatements, interpolateParams on and off), one
//     subtest per item; TestMariaDBCLICharsets the mariadb client with nine
//     --default-character-set values; TestNodeDriversCompat the npm drivers
//     mysql2 and mariadb through testdata/node/compat.cjs (installed by
//     scripts/node-drivers.sh, which make test runs); TestPreparedStatementsClosed
//     a private MariaDB's prepared-statement count and limit;
//     TestFoundRowsBackendClasses clients with and without CLIENT_FOUND_ROWS
//     at once on 2 backends; TestProcesslistIsTheBackends the documented
//     processlist difference. The
//     drivers' own suites run on demand: scripts/driver-suites.sh (results
//     in testdata/driver-suites-*.md).
//   - The hotfix's regressions, each failing on the code before it:
//     TestLongPacketsThroughDriver, TestLongDataSmuggling and
//     TestLongDataBound (payloads of 16 MiB and more, and long data that
//     would run as commands); TestAdminStatementsRefused,
//     TestKillOtherAccount and TestWaitTimeoutFloor (statements that act on
//     the whole server or on other accounts); TestPreLoginMemoryStorm
//     (1,000 sockets stalling mid-handshake); TestClientsThatNeverRead
//     (--client-write-timeout frees their backends).
//
// SCALESTACK_E2E_SRC names another checkout to build the binary from (the
// default is this module's root); E2E_SEED fixes the isolation test's seed.
//
// # MySQL 5.5 mode
//
// TestMySQL55Mode starts the proxy with --mysql55 and runs sysbench
// point_select (server-side prepared statements, 256 threads, 5 s) and the
// go-sql-driver workload (100 goroutines) through it, and the same test
// reads the proxy's greeting with the raw client: it must announce a MySQL
// 5.5 version, ask for mysql_native_password, and offer no capability flag
// above CLIENT_PLUGIN_AUTH (no PLUGIN_AUTH_LENENC_CLIENT_DATA,
// CONNECT_ATTRS, SESSION_TRACK, DEPRECATE_EOF) and no MariaDB extended
// capability, while MariaDB itself offers several of them (checked in the
// same test). The clients therefore negotiate the 5.5 feature set, and the
// workloads show that the proxy serves them correctly while it masks what its
// 10.x backend offers (pinned sessions are then reset with COM_CHANGE_USER).
//
// This package must never contain production code or be imported by it.
package e2e
