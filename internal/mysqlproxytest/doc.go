// Package mysqlproxytest holds the MySQL proxy's in-process tests that
// need a real MariaDB (scripts/mariadb.sh, as `make test` starts it):
// transactions and pins, state replay and prepared statements as the
// server sees them, result sets and LOAD DATA LOCAL of real size, backend
// logins in every mode, drain and health against a server that can be
// killed, sysbench. They run the proxy in the test process through
// pool/mysqlproxy's exported API; the end-to-end tests, which run the
// binary, are in internal/e2e. Tests that need no server (against the
// in-process double internal/mysqlfake) stay in pool/mysqlproxy, so that
// `go test ./pool/...` needs no database.
package mysqlproxytest
