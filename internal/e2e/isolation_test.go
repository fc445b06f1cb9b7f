package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSessionIsolation is a property test: 1000 sessions at once, each with
// its own schema, user variable, session variables, temporary table and
// transactions, run random statements interleaved with each other (100,000
// in all) through a proxy with 4 backend connections. Each session keeps a
// model of what it alone should see and checks every answer against it; any
// difference is a leak between sessions (or a state the proxy lost).
//
// The model is first checked against MariaDB itself with a few sessions, so
// a failure through the proxy cannot be a wrong expectation. Sessions hold
// pinning state (transactions, user variables, temporary tables,
// autocommit=0) only for a few statements and then end it with COMMIT or
// ROLLBACK plus COM_RESET_CONNECTION or a reconnect, as a well-behaved
// application does: a session that pinned a backend for good would starve
// the other 999 of the 4 backends.
//
// E2E_SEED=n reruns a failure's statement sequences (the interleaving of
// sessions is up to the scheduler).
func TestSessionIsolation(t *testing.T) {
	start := time.Now()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("E2E_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("E2E_SEED=%q: %v", s, err)
		}
		seed = v
	}
	t.Logf("seed %d (rerun with E2E_SEED=%d)", seed, seed)
	d := probeDefaults(t)
	t.Logf("server defaults: %+v", d)

	t.Run("model_against_mariadb", func(t *testing.T) {
		runIsolation(t, srv.addr, srv.serviceUser, srv.servicePassword, d, seed, 16, 300, 1_000_000)
	})
	if t.Failed() {
		t.Fatalf("the session model disagrees with MariaDB itself (seed %d); fix the test before judging the proxy", seed)
	}
	t.Run("through_proxy", func(t *testing.T) {
		p := startProxy(t, proxyOptions{backendConns: 4})
		runIsolation(t, p.addr, clientUser, clientPassword, d, seed, 1000, 100, 0)
		p.requireAlive(t)
	})
	t.Logf("TestSessionIsolation took %v", time.Since(start).Round(time.Millisecond))
}

// isoDefaults are the server's session defaults, read from a fresh session
// and after COM_RESET_CONNECTION, so that the model follows the server.
type isoDefaults struct {
	TimeZone, SQLMode    string
	HandshakeCharset     string // character_set_client after a login with utf8mb4
	ResetCharset         string // character_set_client after COM_RESET_CONNECTION
	ResetKeepsSchema     bool
	ResetKeepsAutocommit bool
}

func probeDefaults(t *testing.T) isoDefaults {
	t.Helper()
	c, err := dialRaw(srv.addr, srv.serviceUser, srv.servicePassword, rawOptions{db: isoSchema(1)})
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	defer c.Close()
	c.setDeadline(10 * time.Second)
	var d isoDefaults
	row, err := c.simple("SELECT @@time_zone, @@sql_mode, @@character_set_client")
	if err != nil || len(row) != 1 {
		t.Fatalf("probe: %v %v", row, err)
	}
	d.TimeZone, d.SQLMode, d.HandshakeCharset = row[0][0], row[0][1], row[0][2]
	for _, q := range []string{"SET NAMES latin1", "SET autocommit = 0"} {
		if _, err := c.exec(q); err != nil {
			t.Fatalf("probe %s: %v", q, err)
		}
	}
	if err := c.resetConnection(); err != nil {
		t.Fatalf("probe reset: %v", err)
	}
	row, err = c.simple("SELECT DATABASE(), @@character_set_client, @@autocommit")
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	d.ResetKeepsSchema = row[0][0] == isoSchema(1)
	d.ResetCharset = row[0][1]
	d.ResetKeepsAutocommit = row[0][2] == "0"
	return d
}

// runIsolation runs `sessions` sessions of `stmts` statements each against
// addr and fails the test on any answer the session model does not expect.
func runIsolation(t *testing.T, addr, user, password string, d isoDefaults, seed uint64, sessions, stmts, ownerBase int) {
	start := time.Now()
	var errs errorCollector
	var total atomic.Int64
	ss := make([]*isoSession, sessions)
	var dial sync.WaitGroup
	var dialErrs errorCollector
	sem := make(chan struct{}, 64) // logins in parallel, without a connection storm
	for k := range ss {
		ss[k] = newIsoSession(k, ownerBase+k, addr, user, password, d, seed)
		dial.Add(1)
		go func(s *isoSession) {
			defer dial.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if err := s.connect(); err != nil {
				dialErrs.add("session %d: connect: %v", s.k, err)
			}
		}(ss[k])
	}
	dial.Wait()
	dialErrs.check(t, "connecting the sessions")
	if t.Failed() {
		return
	}
	t.Logf("%d sessions connected at once in %v", sessions, time.Since(start).Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	var run sync.WaitGroup
	for _, s := range ss {
		run.Add(1)
		go func(s *isoSession) {
			defer run.Done()
			defer s.close()
			// After a wrong answer the model is out of step: the session
			// logs in afresh and goes on, so that one kind of failure does
			// not hide the others.
			for {
				err := s.run(ctx, stmts)
				if err == nil {
					break
				}
				var m *isoMismatch
				if !errors.As(err, &m) {
					errs.addKind("other: "+err.Error(), "seed %d session %d statement %d: %v", seed, s.k, s.stmts, err)
					break
				}
				errs.addKind(m.kind(), "seed %d session %d statement %d: %v", seed, s.k, s.stmts, err)
				s.stmts++
				if err := s.connect(); err != nil {
					errs.add("session %d: reconnect: %v", s.k, err)
					break
				}
			}
			total.Add(int64(s.stmts))
		}(s)
	}
	run.Wait()
	errs.check(t, "session isolation")
	if n := total.Load(); n < int64(sessions*stmts) && !t.Failed() {
		t.Errorf("only %d statements ran, want %d", n, sessions*stmts)
	}
	t.Logf("%d sessions, %d statements, %d wrong answers or errors in %v", sessions, total.Load(), errs.n(),
		time.Since(start).Round(time.Millisecond))
}

// isoSession is one client session and the model of what it should see.
type isoSession struct {
	k, owner             int
	addr, user, password string
	d                    isoDefaults
	rng                  *rand.Rand
	c                    *rawConn
	stmts                int

	schema         int
	userVar        *int64
	timeZone       string
	sqlMode        string
	charset        string
	autocommit     bool
	explicitTx     bool
	touchedUserVar bool // a user variable was named: the session stays pinned until a reset
	temp           *isoTemp
	committed      [isoSchemas]int // rows of this owner committed per schema
	pending        [isoSchemas]int // rows inserted in the open transaction
	episode        int             // statements left before pinning state must be dropped; 0: none
	history        []string        // the last statements, for failure reports
}

// note records a statement in the session's recent history.
func (s *isoSession) note(q string) {
	if len(s.history) == 12 {
		copy(s.history, s.history[1:])
		s.history = s.history[:11]
	}
	s.history = append(s.history, q)
}

type isoTemp struct {
	schema int
	count  int
	sum    int64
}

func newIsoSession(k, owner int, addr, user, password string, d isoDefaults, seed uint64) *isoSession {
	return &isoSession{k: k, owner: owner, addr: addr, user: user, password: password, d: d,
		rng: rand.New(rand.NewPCG(seed, uint64(k)))}
}

func (s *isoSession) close() {
	if s.c != nil {
		s.c.Close()
		s.c = nil
	}
}

// connect logs in with a random default schema and resets the model to a fresh session's.
func (s *isoSession) connect() error {
	s.close()
	s.schema = s.rng.IntN(isoSchemas)
	s.note("(new login, schema " + isoSchema(s.schema) + ")")
	c, err := dialRaw(s.addr, s.user, s.password, rawOptions{db: isoSchema(s.schema)})
	if err != nil {
		return err
	}
	s.c = c
	s.charset = s.d.HandshakeCharset
	s.autocommit = true
	s.resetModel()
	return nil
}

// resetModel forgets what COM_RESET_CONNECTION (and a new login) drops.
func (s *isoSession) resetModel() {
	s.userVar, s.temp, s.touchedUserVar, s.explicitTx = nil, nil, false, false
	s.timeZone, s.sqlMode = s.d.TimeZone, s.d.SQLMode
	s.pending = [isoSchemas]int{}
	s.episode = 0
}

func (s *isoSession) pinned() bool {
	return s.explicitTx || !s.autocommit || s.touchedUserVar || s.temp != nil
}

// run performs n statements chosen at random.
func (s *isoSession) run(ctx context.Context, n int) error {
	for s.stmts < n {
		if err := ctx.Err(); err != nil {
			return err
		}
		s.c.setDeadline(60 * time.Second)
		if s.episode > 0 {
			s.episode--
			if s.episode == 0 {
				if err := s.release(); err != nil {
					return err
				}
				continue
			}
		}
		if err := s.step(); err != nil {
			return err
		}
		if s.pinned() && s.episode == 0 {
			s.episode = 2 + s.rng.IntN(10)
		}
	}
	if s.pinned() {
		return s.release()
	}
	return nil
}

// release ends the pinning state: the transaction, autocommit=0, and (with
// a reset or a new login) user variables and the temporary table.
func (s *isoSession) release() error {
	if s.explicitTx || !s.autocommit {
		if s.rng.IntN(2) == 0 {
			if err := s.commit(); err != nil {
				return err
			}
		} else if err := s.rollback(); err != nil {
			return err
		}
	}
	if !s.autocommit {
		if err := s.ok("SET autocommit = 1"); err != nil {
			return err
		}
		s.autocommit = true
	}
	if s.touchedUserVar || s.temp != nil {
		if s.rng.IntN(2) == 0 {
			return s.reset()
		}
		s.stmts++
		return s.connect()
	}
	s.episode = 0
	return nil
}

var (
	isoTimeZones = []string{"+00:00", "+01:00", "-05:30", "+09:45", "SYSTEM"}
	isoSQLModes  = []string{"", "STRICT_TRANS_TABLES", "ONLY_FULL_GROUP_BY,STRICT_ALL_TABLES",
		"STRICT_TRANS_TABLES,NO_ENGINE_SUBSTITUTION", "NO_ZERO_DATE,NO_ENGINE_SUBSTITUTION"}
	isoCharsets = []string{"latin1", "utf8mb4", "ascii"}
)

// step performs one random statement and checks its answer.
func (s *isoSession) step() error {
	switch r := s.rng.IntN(100); {
	case r < 8:
		j := s.rng.IntN(isoSchemas)
		if err := s.ok("USE " + isoSchema(j)); err != nil {
			return err
		}
		s.schema = j
		return nil
	case r < 18:
		return s.expect("SELECT DATABASE(), schema_name FROM marker", isoSchema(s.schema), isoSchema(s.schema))
	case r < 23:
		tz := isoTimeZones[s.rng.IntN(len(isoTimeZones))]
		if err := s.ok("SET time_zone = '" + tz + "'"); err != nil {
			return err
		}
		s.timeZone = tz
		return nil
	case r < 30:
		return s.expect("SELECT @@time_zone", s.timeZone)
	case r < 34:
		m := isoSQLModes[s.rng.IntN(len(isoSQLModes))]
		if err := s.ok("SET sql_mode = '" + m + "'"); err != nil {
			return err
		}
		s.sqlMode = m
		return nil
	case r < 40:
		return s.expect("SELECT @@sql_mode", s.sqlMode)
	case r < 43:
		cs := isoCharsets[s.rng.IntN(len(isoCharsets))]
		if err := s.ok("SET NAMES " + cs); err != nil {
			return err
		}
		s.charset = cs
		return nil
	case r < 47:
		return s.expect("SELECT @@character_set_client, @@character_set_results", s.charset, s.charset)
	case r < 55:
		return s.expect("SELECT COUNT(*) FROM owned WHERE owner = "+strconv.Itoa(s.owner),
			strconv.Itoa(s.committed[s.schema]+s.pending[s.schema]))
	case r < 62:
		return s.insert()
	case r < 65:
		return s.expect("SELECT @@autocommit", boolDigit(s.autocommit))
	case r < 68:
		if !s.autocommit {
			return s.expect("SELECT 1", "1") // @@in_transaction depends on what touched InnoDB; not modelled
		}
		return s.expect("SELECT @@in_transaction", boolDigit(s.explicitTx))
	case r < 72:
		v := s.rng.Int64N(1 << 50)
		if err := s.ok("SET @v = " + strconv.FormatInt(v, 10)); err != nil {
			return err
		}
		s.userVar, s.touchedUserVar = &v, true
		return nil
	case r < 75:
		want := "NULL"
		if s.userVar != nil {
			want = strconv.FormatInt(*s.userVar, 10)
		}
		s.touchedUserVar = true
		return s.expect("SELECT @v", want)
	case r < 79:
		return s.tempTable()
	case r < 84:
		return s.checkTemp()
	case r < 88:
		if s.explicitTx {
			return s.expect("SELECT @@in_transaction", "1")
		}
		// BEGIN commits an implicit (autocommit=0) transaction first.
		if err := s.ok("BEGIN"); err != nil {
			return err
		}
		s.commitModel()
		s.explicitTx = true
		return nil
	case r < 91:
		if !s.autocommit || s.explicitTx {
			return s.commit()
		}
		if err := s.ok("SET autocommit = 0"); err != nil {
			return err
		}
		s.autocommit = false
		return nil
	case r < 94:
		if s.explicitTx || !s.autocommit {
			return s.rollback()
		}
		return s.expect("SELECT @@autocommit", "1")
	case r < 97:
		return s.reset()
	default:
		s.stmts++
		return s.connect()
	}
}

func boolDigit(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func (s *isoSession) insert() error {
	n := s.rng.IntN(1000)
	if err := s.ok(fmt.Sprintf("INSERT INTO owned (owner, n) VALUES (%d, %d)", s.owner, n)); err != nil {
		return err
	}
	if s.explicitTx || !s.autocommit {
		s.pending[s.schema]++
	} else {
		s.committed[s.schema]++
	}
	return nil
}

func (s *isoSession) commitModel() {
	for i := range s.pending {
		s.committed[i] += s.pending[i]
	}
	s.pending = [isoSchemas]int{}
}

func (s *isoSession) commit() error {
	if err := s.ok("COMMIT"); err != nil {
		return err
	}
	s.commitModel()
	s.explicitTx = false
	return nil
}

func (s *isoSession) rollback() error {
	if err := s.ok("ROLLBACK"); err != nil {
		return err
	}
	s.pending = [isoSchemas]int{}
	s.explicitTx = false
	return nil
}

func (s *isoSession) reset() error {
	s.stmts++
	s.note("COM_RESET_CONNECTION")
	if err := s.c.resetConnection(); err != nil {
		return fmt.Errorf("COM_RESET_CONNECTION: %w", err)
	}
	keepAutocommit := !s.autocommit && s.d.ResetKeepsAutocommit
	s.resetModel()
	s.charset = s.d.ResetCharset
	s.autocommit = !keepAutocommit
	if !s.d.ResetKeepsSchema {
		return errors.New("the server forgets the schema on COM_RESET_CONNECTION; the model does not cover that")
	}
	return nil
}

// tempTable creates the session's temporary table (MEMORY, so that
// transactions do not affect it), adds a row to it or drops it.
func (s *isoSession) tempTable() error {
	switch {
	case s.temp == nil:
		j := s.rng.IntN(isoSchemas)
		if err := s.ok("CREATE TEMPORARY TABLE " + isoSchema(j) + ".tmp_e2e (v BIGINT NOT NULL) ENGINE=MEMORY"); err != nil {
			return err
		}
		s.temp = &isoTemp{schema: j}
	case s.rng.IntN(4) == 0:
		if err := s.ok("DROP TEMPORARY TABLE " + isoSchema(s.temp.schema) + ".tmp_e2e"); err != nil {
			return err
		}
		s.temp = nil
	default:
		v := s.rng.Int64N(1 << 40)
		if err := s.ok(fmt.Sprintf("INSERT INTO %s.tmp_e2e VALUES (%d)", isoSchema(s.temp.schema), v)); err != nil {
			return err
		}
		s.temp.count++
		s.temp.sum += v
	}
	return nil
}

// checkTemp reads the temporary table of a random schema: the session's own
// table there, or error 1146 (another session's table of the same name must
// stay invisible).
func (s *isoSession) checkTemp() error {
	j := s.rng.IntN(isoSchemas)
	if s.temp != nil && s.rng.IntN(2) == 0 {
		j = s.temp.schema
	}
	q := "SELECT COUNT(*), COALESCE(SUM(v), 0) FROM " + isoSchema(j) + ".tmp_e2e"
	if s.temp == nil || s.temp.schema != j {
		return s.expectErr(q, 1146)
	}
	return s.expect(q, strconv.Itoa(s.temp.count), strconv.FormatInt(s.temp.sum, 10))
}

// ok runs a statement that must answer OK.
func (s *isoSession) ok(q string) error {
	s.stmts++
	s.note(q)
	if _, err := s.c.exec(q); err != nil {
		return &isoMismatch{query: q, err: fmt.Errorf("%s: %w (model: %s)", q, err, s.describe())}
	}
	return nil
}

// expect runs a query that must answer one row with exactly these values.
func (s *isoSession) expect(q string, want ...string) error {
	s.stmts++
	s.note(q)
	rows, err := s.c.simple(q)
	if err != nil {
		return &isoMismatch{query: q, err: fmt.Errorf("%s: %w (model: %s)", q, err, s.describe())}
	}
	if len(rows) != 1 || fmt.Sprint(rows[0]) != fmt.Sprint(want) {
		return &isoMismatch{query: q, err: fmt.Errorf("LEAK OR LOST STATE: %s answered %q, the session alone should see %q (model: %s)",
			q, rows, want, s.describe())}
	}
	return nil
}

// expectErr runs a query that must fail with the given server error code.
func (s *isoSession) expectErr(q string, code uint16) error {
	s.stmts++
	s.note(q)
	_, err := s.c.query(q)
	var se *serverError
	if errors.As(err, &se) && se.Code == code {
		return nil
	}
	return &isoMismatch{query: q, err: fmt.Errorf("LEAK OR LOST STATE: %s answered %v, want error %d (model: %s)",
		q, err, code, s.describe())}
}

func (s *isoSession) describe() string {
	uv := "NULL"
	if s.userVar != nil {
		uv = strconv.FormatInt(*s.userVar, 10)
	}
	tt := "none"
	if s.temp != nil {
		tt = fmt.Sprintf("%s(%d rows)", isoSchema(s.temp.schema), s.temp.count)
	}
	return fmt.Sprintf("schema=%s @v=%s time_zone=%q sql_mode=%q names=%s autocommit=%v tx=%v temp=%s committed=%v pending=%v; "+
		"recent statements: %s", isoSchema(s.schema), uv, s.timeZone, s.sqlMode, s.charset, s.autocommit, s.explicitTx, tt,
		s.committed, s.pending, strings.Join(s.history, " | "))
}

// isoMismatch is a failed statement of a session.
type isoMismatch struct {
	query string
	err   error
}

func (m *isoMismatch) Error() string { return m.err.Error() }
func (m *isoMismatch) Unwrap() error { return m.err }

var digits = regexp.MustCompile(`[0-9]+`)

// kind groups failures by statement shape and by whether they were a wrong
// answer or an error.
func (m *isoMismatch) kind() string {
	what := "error"
	if strings.HasPrefix(m.err.Error(), "LEAK") {
		what = "wrong answer"
	}
	var se *serverError
	if errors.As(m.err, &se) {
		what = fmt.Sprintf("ERR %d", se.Code)
	}
	return what + ": " + digits.ReplaceAllString(m.query, "N")
}
