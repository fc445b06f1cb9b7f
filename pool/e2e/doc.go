// Package e2e holds the black-box acceptance tests of `scalestack mysqlproxy`:
// they build the scalestack binary once, run the proxy as a subprocess on
// free loopback ports in front of the throwaway MariaDB that
// scripts/mariadb.sh starts (its SCALESTACK_MYSQL_* environment, which `make
// test` exports), and drive it with real clients: go-sql-driver/mysql, the
// `mariadb` command-line client (scripts/mysql-cli-session.sh), sysbench, and
// a small hand-written wire client for what no driver lets a test do
// (closing a socket mid-result, sending malformed packets, checking every
// sequence id).
//
// The tests never import the proxy's packages (pool, mysqlwire, conn,
// reactor): they judge the proxy only by what a client and the server's
// processlist can see, so an internal refactoring cannot make them pass by
// accident. Without the MariaDB environment they fail at once; they never
// skip.
//
// SCALESTACK_E2E_SRC names another checkout to build the binary from (the
// default is this module's root); E2E_SEED fixes the isolation test's seed.
//
// # MySQL 5.5 mode
//
// TestMySQL55Mode starts the proxy with --mysql55 and runs sysbench
// point_select (server-side prepared statements) and the go-sql-driver
// workload through it. The test reads the capability flags of the proxy's
// own handshake with the raw client and requires a 5.5 version string,
// mysql_native_password, and no capability flag above CLIENT_PLUGIN_AUTH
// (no PLUGIN_AUTH_LENENC_CLIENT_DATA, CONNECT_ATTRS, SESSION_TRACK,
// DEPRECATE_EOF) and no MariaDB extended capability, while MariaDB itself
// offers several of them (checked in the same test): the clients therefore
// negotiate the 5.5 feature set, and the workloads prove that the proxy
// still serves them correctly when it masks what its 10.x backend offers.
//
// This package must never contain production code or be imported by it.
package e2e
