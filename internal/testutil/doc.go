// Package testutil holds the helpers that Scale Stack's tests share: leak checks, access to the
// throwaway MariaDB that scripts/mariadb.sh starts, a sysbench runner and free-port lookup.
//
// It is a separate top-level directory (under internal/, so nothing outside this module can import
// it) because several packages' tests need the same helpers and Go offers no other way to share
// test-only code between packages. It is imported only from _test.go files; production code must
// never import it, since it pulls in testing, goleak and a MySQL driver, which the zero-dependency
// core must not link.
//
// Tests that need the database read it from the SCALESTACK_MYSQL_* environment that
// `scripts/mariadb.sh start` writes to DIR/env and `make test` exports. When it is missing they fail
// with instructions instead of skipping: a test that silently does not run hides regressions.
package testutil
