package e2e

import (
	"database/sql"
	"fmt"
	"math/rand"
	"testing"

	"github.com/go-sql-driver/mysql"
)

// TestLastInsertIDPerSession: two accounts interleave inserts with
// generated and explicit ids on 2 backends, and read LAST_INSERT_ID() in
// expressions, WHERE and VALUES. Every answer must be what the session
// alone would see: LAST_INSERT_ID() changes only when the server generates
// an id (an explicit id is reported in the OK packet but does not change
// it), or by LAST_INSERT_ID(expr).
func TestLastInsertIDPerSession(t *testing.T) {
	const table = dataSchema + ".e2e_lastid"
	if _, err := srv.root.Exec("DROP TABLE IF EXISTS " + table); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.root.Exec("CREATE TABLE " + table + " (id BIGINT AUTO_INCREMENT PRIMARY KEY, who VARCHAR(20) NOT NULL, ref BIGINT) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.root.Exec("DROP TABLE IF EXISTS " + table) })

	p := startProxy(t, proxyOptions{backendConns: 2, loops: 1})
	type sess struct {
		name string
		db   *sql.DB
		lid  int64 // what LAST_INSERT_ID() is for this session alone
	}
	users := []struct{ user, pw string }{{clientUser, clientPassword}, {otherUser, otherPassword}}
	sessions := make([]*sess, len(users))
	for i, u := range users {
		u := u
		db := openProxyDB(t, p.addr, dataSchema, func(c *mysql.Config) { c.User, c.Passwd = u.user, u.pw })
		db.SetMaxOpenConns(1)
		db.SetMaxIdleConns(1)
		sessions[i] = &sess{name: fmt.Sprintf("s%d", i), db: db}
	}
	rng := rand.New(rand.NewSource(15))
	explicit := int64(-1)
	var checks, mismatches int
	check := func(s *sess, what string, got, want int64) {
		checks++
		if got != want {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("%s: %s = %d, want %d (the session's own)", s.name, what, got, want)
			}
		}
	}
	for i := 0; i < 400; i++ {
		s := sessions[rng.Intn(len(sessions))]
		switch op := rng.Intn(7); op {
		case 0, 1: // generated id, text or prepared
			var res sql.Result
			var err error
			if op == 0 {
				res, err = s.db.Exec("INSERT INTO " + table + " (who) VALUES ('" + s.name + "')")
			} else {
				res, err = s.db.Exec("INSERT INTO "+table+" (who) VALUES (?)", s.name)
			}
			if err != nil {
				t.Fatal(err)
			}
			s.lid, _ = res.LastInsertId()
		case 2: // explicit id: LAST_INSERT_ID() does not change
			explicit--
			if _, err := s.db.Exec(fmt.Sprintf("INSERT INTO %s (id, who) VALUES (%d, '%s')", table, explicit, s.name)); err != nil {
				t.Fatal(err)
			}
		case 3: // in an expression
			var v int64
			if err := s.db.QueryRow("SELECT LAST_INSERT_ID()+0").Scan(&v); err != nil {
				t.Fatal(err)
			}
			check(s, "SELECT LAST_INSERT_ID()+0", v, s.lid)
		case 4: // answered by the proxy itself
			var v int64
			if err := s.db.QueryRow("SELECT LAST_INSERT_ID()").Scan(&v); err != nil {
				t.Fatal(err)
			}
			check(s, "SELECT LAST_INSERT_ID()", v, s.lid)
		case 5: // in WHERE: the session's own row
			if s.lid == 0 {
				continue
			}
			var n int64
			if err := s.db.QueryRow("SELECT COUNT(*) FROM "+table+" WHERE id = LAST_INSERT_ID() AND who = ?", s.name).Scan(&n); err != nil {
				t.Fatal(err)
			}
			check(s, "rows WHERE id = LAST_INSERT_ID() of its own", n, 1)
		case 6: // in VALUES: the new row refers to the session's previous id
			prev := s.lid
			res, err := s.db.Exec("INSERT INTO " + table + " (who, ref) VALUES ('" + s.name + "', LAST_INSERT_ID())")
			if err != nil {
				t.Fatal(err)
			}
			id, _ := res.LastInsertId()
			s.lid = id
			var ref int64
			if err := srv.root.QueryRow("SELECT ref FROM "+table+" WHERE id = ?", id).Scan(&ref); err != nil {
				t.Fatal(err)
			}
			check(s, "LAST_INSERT_ID() in VALUES", ref, prev)
		}
	}
	t.Logf("%d checks, %d mismatches", checks, mismatches)
	if checks < 100 {
		t.Errorf("only %d checks", checks)
	}
}
