package e2e

import (
	"context"
	"database/sql"
	"testing"
	"time"
)

// TestDocumentedPins checks, against MariaDB, the pins that
// pool/mysqlproxy's documentation lists and no other test exercises: LOCK
// TABLES pins until UNLOCK TABLES, SQL_CALC_FOUND_ROWS pins (FOUND_ROWS()
// must run where it counted), SET TRANSACTION pins (the server reports
// characteristics pending for the next transaction; the pin lasts as long
// as the session), and a schema the server reports (EXECUTE IMMEDIATE 'USE
// ...', which the proxy does not parse) becomes the session's, with a pin
// (the report's state-change flag may stand for more). With one
// backend and a 500 ms queue timeout, "pinned" is observable: another
// client's statement waits for the backend in vain (ERR 9001) while the
// session is idle.
func TestDocumentedPins(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := startProxy(t, proxyOptions{backendConns: 1, loops: 1, queueTimeout: 500 * time.Millisecond})
	other := openOtherDB(t, p.addr, dataSchema)
	other.SetMaxOpenConns(1)
	// pinned reports whether the backend stays with the session: another
	// client's statement gets 9001 instead of running.
	pinned := func() bool {
		t.Helper()
		var db string
		err := other.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&db)
		if me, ok := asMySQLError(err); ok && me.Number == 9001 {
			return true
		}
		if err != nil || db != dataSchema {
			t.Fatalf("the other client: %q, %v (want its own schema %s)", db, err, dataSchema)
		}
		return false
	}
	type step struct {
		sql    string
		want   string // the one value the statement answers ("" for none); "ERR n" for an error
		pinned bool   // whether the session holds the backend afterwards
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"LOCK TABLES until UNLOCK TABLES", []step{
			{"LOCK TABLES " + dataSchema + ".kv READ", "", true},
			// As on the server: under LOCK TABLES only the locked tables can be used.
			{"SELECT COUNT(*) FROM " + dataSchema + ".big", "ERR 1100", true},
			{"SELECT COUNT(*) >= 0 FROM " + dataSchema + ".kv", "1", true},
			{"UNLOCK TABLES", "", false},
			{"SELECT COUNT(*) FROM " + dataSchema + ".big", "100000", false},
		}},
		{"SQL_CALC_FOUND_ROWS", []step{
			{"SELECT SQL_CALC_FOUND_ROWS id FROM " + dataSchema + ".big ORDER BY id LIMIT 1", "1", true},
			{"SELECT FOUND_ROWS()", "100000", true},
		}},
		{"SET TRANSACTION", []step{
			{"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", "", true},
			{"BEGIN", "", true},
			{"SELECT COUNT(*) FROM " + dataSchema + ".kv WHERE id = -1", "0", true},
			{"COMMIT", "", true},
			{"SELECT @@tx_isolation", "REPEATABLE-READ", true},
		}},
		{"a schema the server reports", []step{
			{"EXECUTE IMMEDIATE 'USE " + isoSchema(2) + "'", "", true},
			{"SELECT DATABASE(), (SELECT schema_name FROM marker)", isoSchema(2), true},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			db := openProxyDB(t, p.addr, dataSchema, nil)
			c, err := db.Conn(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			for _, st := range tc.steps {
				var got sql.NullString
				var rest sql.NullString
				var err error
				if st.want == "" {
					_, err = c.ExecContext(ctx, st.sql)
				} else {
					rows, qerr := c.QueryContext(ctx, st.sql)
					err = qerr
					if qerr == nil {
						cols, _ := rows.Columns()
						for rows.Next() {
							if len(cols) == 2 {
								err = rows.Scan(&got, &rest)
							} else {
								err = rows.Scan(&got)
							}
						}
						if err == nil {
							err = rows.Err()
						}
						rows.Close()
					}
				}
				switch me, isErr := asMySQLError(err); {
				case isErr && "ERR "+itoa(int(me.Number)) == st.want:
				case err != nil:
					t.Fatalf("%s: %v (want %q)", st.sql, err, st.want)
				case st.want != "" && (got.String != st.want || rest.Valid && rest.String != st.want):
					t.Fatalf("%s answered %q %q, want %q as on a direct connection", st.sql, got.String, rest.String, st.want)
				}
				if is := pinned(); is != st.pinned {
					t.Fatalf("after %s: the session holds the backend: %v, want %v", st.sql, is, st.pinned)
				}
			}
		})
	}
	// The sessions that pinned have gone: the backend serves the other client.
	deadline := time.Now().Add(5 * time.Second)
	for pinned() {
		if time.Now().After(deadline) {
			t.Fatal("the backend stayed pinned after every session left")
		}
	}
}
