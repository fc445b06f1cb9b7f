package main

import (
	"flag"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/scalestack/scalestack/conn"
	"github.com/scalestack/scalestack/memcachewire"
	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
	"github.com/scalestack/scalestack/reactor"
)

// The memcached module's MySQL table back end (--backend mysql): what
// MySQL's InnoDB memcached plugin gave its users before MySQL 8.3 removed
// it. Each key is a row of one table (--table, --key-column,
// --value-column, optional --flags-column, --exptime-column and
// --cas-column); every command becomes prepared statements run through
// the MySQL pool's embedding API (pool/mysqlproxy, "Embedded callers"):
// the same N backend connections, queue and refusals as the MySQL proxy,
// as the users-file account --account.
//
// A client's commands run one at a time, in order: while one runs, its
// input is not read (what it pipelined waits in the connection's buffer).
// A retrieval's keys are looked up one after the other and each VALUE is
// written as its row arrives.
//
// Semantics follow memcached's. Expiry: exptime 0 never expires, up to 30
// days is relative, beyond that a Unix time, negative is already expired;
// the column holds the absolute Unix time (0: never) and an expired row
// is a miss for every command (it stays in the table until a set, add or
// delete of its key). Without --exptime-column items never expire. CAS:
// the cas column gets UUID_SHORT() (unique and increasing on a server) on
// every change, and cas is `UPDATE ... WHERE key = ? AND cas = ?`, atomic
// in the server: of two concurrent cas of one key with the same unique,
// one is STORED and the other EXISTS, whichever proxies they came
// through. Without --cas-column, gets reports 0 and cas is refused. incr
// and decr read the value and write it back only if it is still what was
// read (retried on a conflict), so they are atomic too. gat and gats
// read an item, then set its expiry. flush_all, stats and the meta commands are
// answered mcSQLUnsupported.

var (
	mcSQLUnsupported = []byte("SERVER_ERROR proxy: not supported by the MySQL table back end\r\n")
	mcSQLNoCas       = []byte("SERVER_ERROR proxy: cas needs --cas-column\r\n")
	mcSQLBusy        = []byte("SERVER_ERROR proxy: the value kept changing; try again\r\n")
	mcNonNumeric     = []byte("CLIENT_ERROR cannot increment or decrement non-numeric value\r\n")
	mcStored         = []byte("STORED\r\n")
	mcNotStored      = []byte("NOT_STORED\r\n")
	mcExists         = []byte("EXISTS\r\n")
	mcNotFound       = []byte("NOT_FOUND\r\n")
	mcDeleted        = []byte("DELETED\r\n")
	mcTouched        = []byte("TOUCHED\r\n")
)

// mcSQLConf is the MySQL table back end's configuration.
type mcSQLConf struct {
	proxy   mysqlproxy.Config
	account string
	schema  string
	table   string
	key     string
	value   string
	flags   string // optional columns: "" when absent
	exptime string
	cas     string
}

var sqlIdent = regexp.MustCompile(`^[A-Za-z0-9_$]{1,64}$`)

// validate checks the table and column names, which are spliced into the
// statements (backquoted): only plain identifiers.
func (sc *mcSQLConf) validate() error {
	if sc.table == "" {
		return fmt.Errorf("--table is required with --backend mysql")
	}
	for _, f := range []struct{ flag, v string }{
		{"table", sc.table}, {"key-column", sc.key}, {"value-column", sc.value},
	} {
		if !sqlIdent.MatchString(f.v) {
			return fmt.Errorf("--%s: %q is not a plain identifier (letters, digits, _ and $)", f.flag, f.v)
		}
	}
	for _, f := range []struct{ flag, v string }{
		{"mysql-schema", sc.schema}, {"flags-column", sc.flags}, {"exptime-column", sc.exptime}, {"cas-column", sc.cas},
	} {
		if f.v != "" && !sqlIdent.MatchString(f.v) {
			return fmt.Errorf("--%s: %q is not a plain identifier (letters, digits, _ and $)", f.flag, f.v)
		}
	}
	if sc.account == "" {
		return fmt.Errorf("--account is required with --backend mysql")
	}
	return nil
}

// mcSQLStmts are the statements of one loop.
type mcSQLStmts struct {
	get, exists, set, add, replace, appendS, prependS, cas, del, touch, incr *mysqlproxy.Stmt
}

// statements builds the SQL texts from the configuration.
func (sc *mcSQLConf) statements() map[string]string {
	q := func(id string) string { return "`" + id + "`" }
	t, k, v := q(sc.table), q(sc.key), q(sc.value)
	live := ""
	if sc.exptime != "" {
		e := q(sc.exptime)
		live = " AND (" + e + " = 0 OR " + e + " > UNIX_TIMESTAMP())"
	}
	sel := v
	if sc.flags != "" {
		sel += ", " + q(sc.flags)
	}
	if sc.cas != "" {
		sel += ", " + q(sc.cas)
	}
	// Columns written by set, add, replace, cas: value, flags, exptime
	// (parameters, in that order), cas (UUID_SHORT()).
	cols, vals := []string{k, v}, []string{"?", "?"}
	sets := []string{v + " = ?"}
	if sc.flags != "" {
		cols, vals = append(cols, q(sc.flags)), append(vals, "?")
		sets = append(sets, q(sc.flags)+" = ?")
	}
	if sc.exptime != "" {
		cols, vals = append(cols, q(sc.exptime)), append(vals, "?")
		sets = append(sets, q(sc.exptime)+" = ?")
	}
	changed := ""
	if sc.cas != "" {
		cols, vals = append(cols, q(sc.cas)), append(vals, "UUID_SHORT()")
		sets = append(sets, q(sc.cas)+" = UUID_SHORT()")
		changed = ", " + q(sc.cas) + " = UUID_SHORT()"
	}
	insert := "INSERT INTO " + t + " (" + strings.Join(cols, ", ") + ") VALUES (" + strings.Join(vals, ", ") + ")"
	var upsert, addUpd []string
	expired := ""
	if sc.exptime != "" {
		e := q(sc.exptime)
		expired = "(" + e + " <> 0 AND " + e + " <= UNIX_TIMESTAMP())"
	}
	for _, c := range cols[1:] {
		upsert = append(upsert, c+" = VALUES("+c+")")
		if expired != "" && c != q(sc.exptime) {
			addUpd = append(addUpd, c+" = IF("+expired+", VALUES("+c+"), "+c+")")
		}
	}
	if expired != "" {
		// The expiry last: the conditions above read the old one.
		e := q(sc.exptime)
		addUpd = append(addUpd, e+" = IF("+expired+", VALUES("+e+"), "+e+")")
	} else {
		addUpd = []string{k + " = " + k}
	}
	touch := "SELECT 1 FROM " + t + " WHERE " + k + " = ?" + live
	if sc.exptime != "" {
		touch = "UPDATE " + t + " SET " + q(sc.exptime) + " = ? WHERE " + k + " = ?" + live
	}
	return map[string]string{
		"get":     "SELECT " + sel + " FROM " + t + " WHERE " + k + " = ?" + live,
		"exists":  "SELECT 1 FROM " + t + " WHERE " + k + " = ?" + live,
		"set":     insert + " ON DUPLICATE KEY UPDATE " + strings.Join(upsert, ", "),
		"add":     insert + " ON DUPLICATE KEY UPDATE " + strings.Join(addUpd, ", "),
		"replace": "UPDATE " + t + " SET " + strings.Join(sets, ", ") + " WHERE " + k + " = ?" + live,
		"append":  "UPDATE " + t + " SET " + v + " = CONCAT(" + v + ", ?)" + changed + " WHERE " + k + " = ?" + live,
		"prepend": "UPDATE " + t + " SET " + v + " = CONCAT(?, " + v + ")" + changed + " WHERE " + k + " = ?" + live,
		"cas":     "UPDATE " + t + " SET " + strings.Join(sets, ", ") + " WHERE " + k + " = ? AND " + q(sc.cas) + " = ?" + live,
		"delete":  "DELETE FROM " + t + " WHERE " + k + " = ?" + live,
		"touch":   touch,
		"incr":    "UPDATE " + t + " SET " + v + " = ?" + changed + " WHERE " + k + " = ? AND " + v + " = ?",
	}
}

// mcSQL is the memcached front of a MySQL table.
type mcSQL struct {
	cfg     mcConfig
	sc      *mcSQLConf
	p       *mysqlproxy.Proxy
	loops   []*mcSQLStmts
	clients atomic.Uint64
}

func newMemcacheSQL(cfg mcConfig) (*mcSQL, error) {
	sc := cfg.sql
	if err := sc.validate(); err != nil {
		return nil, err
	}
	if _, ok := sc.proxy.Users[sc.account]; !ok {
		return nil, fmt.Errorf("--account: %q is not in the users file", sc.account)
	}
	// The table back end runs as its configured MySQL user (the account
	// the operator gave the table): memcached clients have no accounts,
	// so per-account identities do not apply.
	pc := sc.proxy
	pc.Identity = mysqlproxy.IdentityService
	p, err := mysqlproxy.New(pc)
	if err != nil {
		return nil, err
	}
	return &mcSQL{cfg: cfg, sc: sc, p: p}, nil
}

// start opens the backends and prepares each loop's statements (they are
// checked here, so a mistake in the configuration stops the start).
func (m *mcSQL) start(e *reactor.Engine) error {
	if err := m.p.StartBackends(e); err != nil {
		return err
	}
	texts := m.sc.statements()
	m.loops = make([]*mcSQLStmts, len(e.Loops()))
	for i, l := range e.Loops() {
		var err error
		if xerr := l.Exec(func(l *reactor.Loop) {
			s := &mcSQLStmts{}
			for name, dst := range map[string]**mysqlproxy.Stmt{
				"get": &s.get, "exists": &s.exists, "set": &s.set, "add": &s.add, "replace": &s.replace,
				"append": &s.appendS, "prepend": &s.prependS, "cas": &s.cas, "delete": &s.del,
				"touch": &s.touch, "incr": &s.incr,
			} {
				if name == "cas" && m.sc.cas == "" {
					continue
				}
				st, perr := m.p.PrepareStmt(l, m.sc.schema, texts[name])
				if perr != nil {
					err = fmt.Errorf("memcache: statement for %s (%s): %w", name, texts[name], perr)
					return
				}
				*dst = st
			}
			m.loops[i] = s
		}); xerr != nil {
			return xerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (m *mcSQL) newHandler(c *conn.Conn) conn.Handler {
	m.clients.Add(1)
	cl := &mcSQLClient{m: m, st: m.loops[c.Loop().ID()], c: c}
	cl.req.Account = m.sc.account
	cl.req.Sink = cl
	return cl
}

// mcSQLClient is one memcached client of the MySQL table back end.
type mcSQLClient struct {
	m   *mcSQL
	st  *mcSQLStmts
	c   *conn.Conn
	req mysqlproxy.Request
	// params backs req.Params.
	params [5]mysqlwire.Value

	// The command being served (its key and data copied out of the
	// input, which is consumed at once).
	cmd     memcachewire.Command
	step    mcStep
	noreply bool
	busy    bool
	closed  bool
	paused  bool
	swallow int // bytes of a refused data block still to discard
	key     []byte
	keys    []byte // a retrieval's keys still to look up
	data    []byte
	flags   uint32
	exptime int64
	casIn   uint64
	delta   uint64
	retries int
	// What the statement answered.
	found bool
	value []byte // incr/decr: the value read
	out   []byte
}

// mcStep is the statement of a command being run.
type mcStep uint8

const (
	stepMain   mcStep = iota // the command's own statement
	stepExists               // SELECT 1: did a 0-row UPDATE miss, or change nothing?
	stepIncrUpdate
	stepGatTouch // gat/gats: the new expiry of an item just read
)

func (cl *mcSQLClient) OnOpen(*conn.Conn) {}

func (cl *mcSQLClient) OnData(c *conn.Conn, data []byte) int {
	consumed := 0
	if cl.swallow > 0 {
		consumed = min(cl.swallow, len(data))
		cl.swallow -= consumed
	}
	lim := &cl.m.cfg.lim
	for consumed < len(data) && !cl.busy && !cl.closed {
		req := &memcachewire.Request{}
		st := memcachewire.ParseRequest(data[consumed:], lim, req)
		if st == memcachewire.Incomplete {
			break
		}
		if st != memcachewire.OK {
			if st == memcachewire.ErrLineTooLong {
				c.Write(st.Reply())
				c.Close()
				return len(data)
			}
			if !req.Noreply {
				c.Write(st.Reply())
			}
			if rest := len(data) - consumed; req.Size > rest {
				// A data block too large: its tail is discarded as it
				// arrives.
				cl.swallow = req.Size - rest
				return len(data)
			}
			consumed += req.Size
			continue
		}
		consumed += req.Size
		cl.serve(req)
	}
	return consumed
}

// serve starts req (its slices alias the input: what a statement needs is
// copied).
func (cl *mcSQLClient) serve(req *memcachewire.Request) {
	switch req.Cmd {
	case memcachewire.CmdVersion:
		cl.c.Write([]byte("VERSION 1.6.0-scalestack-mysql\r\n"))
		return
	case memcachewire.CmdQuit:
		cl.closed = true
		cl.c.Close()
		return
	case memcachewire.CmdMetaNoop:
		cl.c.Write(mcMN)
		return
	case memcachewire.CmdVerbosity:
		if !req.Noreply {
			cl.c.Write(mcOK)
		}
		return
	case memcachewire.CmdCas:
		if cl.m.sc.cas == "" {
			cl.c.Write(mcSQLNoCas)
			return
		}
	case memcachewire.CmdGet, memcachewire.CmdGets, memcachewire.CmdGat, memcachewire.CmdGats,
		memcachewire.CmdSet, memcachewire.CmdAdd,
		memcachewire.CmdReplace, memcachewire.CmdAppend, memcachewire.CmdPrepend, memcachewire.CmdDelete,
		memcachewire.CmdIncr, memcachewire.CmdDecr, memcachewire.CmdTouch:
	default:
		if !req.Noreply {
			cl.c.Write(mcSQLUnsupported)
		}
		return
	}
	cl.cmd, cl.noreply = req.Cmd, req.Noreply
	cl.flags, cl.casIn, cl.delta, cl.retries = req.Flags, req.Cas, req.Delta, 0
	cl.exptime = absExptime(req.Exptime, cl.c.Loop().Now())
	cl.data = append(cl.data[:0], req.Data...)
	cl.busy = true
	cl.c.PauseRead()
	if req.Cmd.Retrieval() {
		cl.keys = append(cl.keys[:0], req.Keys...)
		cl.nextKey()
		return
	}
	cl.key = append(cl.key[:0], req.Key...)
	cl.run(stepMain)
}

// absExptime turns memcached's exptime into the column's absolute Unix
// time (0: never; 1, long past, for an already expired item).
func absExptime(exp int64, now time.Time) int64 {
	switch {
	case exp == 0:
		return 0
	case exp < 0:
		return 1
	case exp <= 30*24*3600:
		return now.Unix() + exp
	}
	return exp
}

// nextKey looks up the next key of a retrieval, or ends it.
func (cl *mcSQLClient) nextKey() {
	k, rest := memcachewire.NextKey(cl.keys)
	if k == nil {
		cl.finish(mcEND)
		return
	}
	cl.key = append(cl.key[:0], k...)
	cl.keys = cl.keys[:copy(cl.keys, rest)]
	cl.run(stepMain)
}

func bytesParam(b []byte) mysqlwire.Value {
	return mysqlwire.Value{Type: mysqlwire.TypeBlob, Bytes: b}
}

// storeParams binds value, flags, exptime (those configured).
func (cl *mcSQLClient) storeParams(ps []mysqlwire.Value) []mysqlwire.Value {
	ps = append(ps, bytesParam(cl.data))
	if cl.m.sc.flags != "" {
		ps = append(ps, mysqlwire.Value{Type: mysqlwire.TypeLong, Unsigned: true, Uint: uint64(cl.flags)})
	}
	if cl.m.sc.exptime != "" {
		ps = append(ps, mysqlwire.Value{Type: mysqlwire.TypeLongLong, Int: cl.exptime})
	}
	return ps
}

// run starts the statement of step for the command being served.
func (cl *mcSQLClient) run(step mcStep) {
	cl.step = step
	cl.found = false
	s := cl.st
	ps := cl.params[:0]
	key := bytesParam(cl.key)
	var st *mysqlproxy.Stmt
	switch {
	case step == stepExists:
		st, ps = s.exists, append(ps, key)
	case step == stepGatTouch:
		st = s.touch
		ps = append(ps, mysqlwire.Value{Type: mysqlwire.TypeLongLong, Int: cl.exptime}, key)
	case step == stepIncrUpdate:
		st = s.incr
		ps = append(ps, bytesParam(cl.data), key, bytesParam(cl.value))
	default:
		switch cl.cmd {
		case memcachewire.CmdGet, memcachewire.CmdGets, memcachewire.CmdGat, memcachewire.CmdGats,
			memcachewire.CmdIncr, memcachewire.CmdDecr:
			st, ps = s.get, append(ps, key)
		case memcachewire.CmdSet:
			st, ps = s.set, cl.storeParams(append(ps, key))
		case memcachewire.CmdAdd:
			st, ps = s.add, cl.storeParams(append(ps, key))
		case memcachewire.CmdReplace:
			st, ps = s.replace, append(cl.storeParams(ps), key)
		case memcachewire.CmdAppend:
			st, ps = s.appendS, append(ps, bytesParam(cl.data), key)
		case memcachewire.CmdPrepend:
			st, ps = s.prependS, append(ps, bytesParam(cl.data), key)
		case memcachewire.CmdCas:
			st = s.cas
			ps = append(cl.storeParams(ps), key, mysqlwire.Value{Type: mysqlwire.TypeLongLong, Unsigned: true, Uint: cl.casIn})
		case memcachewire.CmdDelete:
			st, ps = s.del, append(ps, key)
		case memcachewire.CmdTouch:
			st = s.touch
			if cl.m.sc.exptime != "" {
				ps = append(ps, mysqlwire.Value{Type: mysqlwire.TypeLongLong, Int: cl.exptime})
			}
			ps = append(ps, key)
		}
	}
	cl.req.Stmt, cl.req.Params = st, ps
	cl.req.Start()
}

// Column implements mysqlproxy.Sink: the columns are known.
func (cl *mcSQLClient) Column(*mysqlproxy.Request, int, *mysqlwire.ColumnDefinition) {}

// Row implements mysqlproxy.Sink: a retrieval's item goes out at once.
func (cl *mcSQLClient) Row(r *mysqlproxy.Request, row *mysqlproxy.Row) bool {
	cl.found = true
	if cl.step != stepMain {
		return true // SELECT 1
	}
	v, err := row.Next()
	if err != nil {
		return true
	}
	var flags, cas uint64
	if cl.m.sc.flags != "" {
		if f, err := row.Next(); err == nil {
			flags = f.Uint
		}
	}
	if cl.m.sc.cas != "" {
		if c, err := row.Next(); err == nil {
			cas = c.Uint
		}
	}
	switch cl.cmd {
	case memcachewire.CmdIncr, memcachewire.CmdDecr:
		cl.value = append(cl.value[:0], v.Bytes...)
		return true
	}
	withCas := cl.cmd == memcachewire.CmdGets || cl.cmd == memcachewire.CmdGats
	cl.out = memcachewire.AppendValue(cl.out[:0], cl.key, uint32(flags), v.Bytes, cas, withCas)
	cl.c.Write(cl.out)
	if cl.c.OverHighWater() {
		cl.paused = true
		return false
	}
	return true
}

// OnHighWater implements conn.WatermarkHandler (Row checks the mark).
func (cl *mcSQLClient) OnHighWater(*conn.Conn) {}

// OnLowWater resumes a response paused behind a slow client.
func (cl *mcSQLClient) OnLowWater(*conn.Conn) {
	if cl.paused {
		cl.paused = false
		cl.req.Resume()
	}
}

// Done implements mysqlproxy.Sink: the statement's outcome decides the
// answer, or the next statement.
func (cl *mcSQLClient) Done(r *mysqlproxy.Request, err error) {
	if cl.closed {
		return
	}
	if err != nil {
		cl.fail(err)
		return
	}
	affected := r.AffectedRows()
	switch cl.step {
	case stepGatTouch:
		cl.nextKey()
		return
	case stepExists:
		switch {
		case cl.cmd == memcachewire.CmdCas && cl.found:
			cl.finish(mcExists)
		case cl.cmd == memcachewire.CmdCas:
			cl.finish(mcNotFound)
		case cl.cmd == memcachewire.CmdTouch && cl.found:
			cl.finish(mcTouched)
		case cl.cmd == memcachewire.CmdTouch:
			cl.finish(mcNotFound)
		case cl.found:
			cl.finish(mcStored) // the UPDATE found the row and changed nothing
		default:
			cl.finish(mcNotStored)
		}
		return
	case stepIncrUpdate:
		if affected == 0 {
			cl.retryIncr()
			return
		}
		cl.finish(append(cl.data, "\r\n"...))
		return
	}
	switch cl.cmd {
	case memcachewire.CmdGet, memcachewire.CmdGets:
		cl.nextKey()
	case memcachewire.CmdGat, memcachewire.CmdGats:
		if cl.found && cl.m.sc.exptime != "" {
			cl.run(stepGatTouch) // as memcached: the item read, then its new expiry
			return
		}
		cl.nextKey()
	case memcachewire.CmdIncr, memcachewire.CmdDecr:
		cl.incr()
	case memcachewire.CmdSet:
		cl.finish(mcStored)
	case memcachewire.CmdAdd:
		if affected == 0 {
			cl.finish(mcNotStored)
			return
		}
		cl.finish(mcStored)
	case memcachewire.CmdReplace, memcachewire.CmdAppend, memcachewire.CmdPrepend:
		if affected == 0 && cl.m.sc.cas == "" {
			cl.run(stepExists) // no cas column: an unchanged row also counts 0
			return
		}
		if affected == 0 {
			cl.finish(mcNotStored)
			return
		}
		cl.finish(mcStored)
	case memcachewire.CmdCas:
		if affected == 0 {
			cl.run(stepExists)
			return
		}
		cl.finish(mcStored)
	case memcachewire.CmdDelete:
		if affected == 0 {
			cl.finish(mcNotFound)
			return
		}
		cl.finish(mcDeleted)
	case memcachewire.CmdTouch:
		if cl.m.sc.exptime == "" {
			if cl.found {
				cl.finish(mcTouched)
			} else {
				cl.finish(mcNotFound)
			}
			return
		}
		if affected == 0 {
			cl.run(stepExists)
			return
		}
		cl.finish(mcTouched)
	}
}

// incr computes the new value of an incr or decr from the value read and
// writes it back if the row still holds that value.
func (cl *mcSQLClient) incr() {
	if !cl.found {
		cl.finish(mcNotFound)
		return
	}
	cur, err := strconv.ParseUint(strings.TrimRight(string(cl.value), " "), 10, 64)
	if err != nil || len(cl.value) == 0 {
		cl.finish(mcNonNumeric)
		return
	}
	next := cur + cl.delta // incr wraps at 2^64, as memcached's
	if cl.cmd == memcachewire.CmdDecr {
		next = 0
		if cur > cl.delta {
			next = cur - cl.delta
		}
	}
	cl.data = strconv.AppendUint(cl.data[:0], next, 10)
	if next == cur && cl.m.sc.cas == "" {
		cl.finish(append(cl.data, "\r\n"...)) // nothing to write
		return
	}
	cl.run(stepIncrUpdate)
}

// retryIncr reads the value again after another writer changed it.
func (cl *mcSQLClient) retryIncr() {
	cl.retries++
	if cl.retries > 16 {
		cl.finish(mcSQLBusy)
		return
	}
	cl.run(stepMain)
}

// fail answers a statement's error.
func (cl *mcSQLClient) fail(err error) {
	msg := err.Error()
	if e, ok := err.(*mysqlproxy.SQLError); ok {
		msg = fmt.Sprintf("%d %s", e.Code, e.Message)
	}
	msg = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, msg)
	cl.noreply = false // an error is always reported
	cl.keys = cl.keys[:0]
	cl.finish([]byte("SERVER_ERROR proxy: " + msg + "\r\n"))
}

// finish answers the command and reads the client's next one.
func (cl *mcSQLClient) finish(reply []byte) {
	if !cl.noreply || cl.cmd.Retrieval() {
		cl.c.Write(reply)
	}
	cl.busy = false
	if len(cl.data) > 64<<10 {
		cl.data = nil // a large value's buffer is not kept by an idle client
	}
	cl.c.ResumeRead() // input that waited is presented again
}

// OnClose: a statement already sent runs to its end (its answer is
// dropped), which costs less than closing its backend; one still waiting
// for a backend, or paused behind this client, is canceled.
func (cl *mcSQLClient) OnClose(*conn.Conn, error) {
	cl.closed = true
	if cl.req.Waiting() || cl.paused {
		cl.req.Cancel()
	}
}

func memcacheSQLModule(listen conn.Addr, spread bool, cfg mcConfig) (module, error) {
	m, err := newMemcacheSQL(cfg)
	if err != nil {
		return module{}, err
	}
	return module{
		name: "memcache",
		listen: conn.ListenConfig{Addr: listen, Spread: spread, NewHandler: m.newHandler, Options: conn.Options{
			MaxInput: cfg.lim.MaxValue + cfg.lim.MaxKeysLine + 256<<10,
		}},
		collectors: []prometheus.Collector{newPoolCollector(m.p, false)},
		ready:      m.p.Ready,
		start:      m.start,
		stop:       func() { _ = m.p.Close() },
		status: func() any {
			return map[string]any{"backend": "mysql", "table": m.sc.table, "clients": m.clients.Load(), "stats": m.p.Stats()}
		},
	}, nil
}

// memcacheSQLFlags declares the MySQL table back end's flags; the function
// it returns gives nil for --backend memcached.
func memcacheSQLFlags(fs *flag.FlagSet) func() (*mcSQLConf, error) {
	backend := fs.String("backend", "memcached", "what holds the items: memcached (the --servers) or mysql (a table: --mysql, --table and the flags below)")
	addr := fs.String("mysql", "", "with --backend mysql: the MySQL/MariaDB server, host:port or unix:/path")
	user := fs.String("mysql-user", "", "with --backend mysql: service account the backend connections log in as")
	passwordFile := fs.String("mysql-password-file", "", "with --backend mysql: file whose first line is the service account's password (empty: none); refused if group- or world-writable")
	conns := fs.Int("mysql-conns", 8, "with --backend mysql: exact number of backend connections, shared by every client")
	usersFile := fs.String("users", "", "with --backend mysql: the MySQL proxy's users file (see scalestack mysqlproxy --help); --account must be in it")
	account := fs.String("account", "", "with --backend mysql: the users-file account the statements run for")
	queueTimeout := fs.Duration("mysql-queue-timeout", 10*time.Second, "with --backend mysql: how long a command waits for a backend connection before SERVER_ERROR")
	schema := fs.String("mysql-schema", "", "with --backend mysql: the schema (database) of --table")
	table := fs.String("table", "", "with --backend mysql: the table holding the items")
	key := fs.String("key-column", "k", "with --backend mysql: the key column (its primary key or a unique key; VARBINARY(250) fits every key)")
	value := fs.String("value-column", "v", "with --backend mysql: the value column (a BLOB or VARBINARY)")
	flags := fs.String("flags-column", "", "with --backend mysql: the column of the client's flags (INT UNSIGNED; empty: flags are not kept and read as 0)")
	exptime := fs.String("exptime-column", "", "with --backend mysql: the column of the expiry as a Unix time, 0 for never (BIGINT; empty: items never expire)")
	cas := fs.String("cas-column", "", "with --backend mysql: the column of the cas unique (BIGINT UNSIGNED, set to UUID_SHORT() on every change; empty: gets reports 0 and cas is refused)")
	return func() (*mcSQLConf, error) {
		switch *backend {
		case "memcached":
			return nil, nil
		case "mysql":
		default:
			return nil, fmt.Errorf("--backend: want memcached or mysql, got %q", *backend)
		}
		if *addr == "" || *user == "" || *usersFile == "" {
			return nil, fmt.Errorf("--backend mysql needs --mysql, --mysql-user and --users")
		}
		if *conns < 1 {
			return nil, fmt.Errorf("--mysql-conns: want at least 1")
		}
		var password []byte
		if *passwordFile != "" {
			pw, err := mysqlproxy.ReadPasswordFile(*passwordFile)
			if err != nil {
				return nil, fmt.Errorf("--mysql-password-file: %w", err)
			}
			password = pw
		}
		users, err := mysqlproxy.LoadUsers(*usersFile)
		if err != nil {
			return nil, fmt.Errorf("--users: %w", err)
		}
		baddr, err := conn.ParseAddr(*addr)
		if err != nil {
			return nil, fmt.Errorf("--mysql: %w", err)
		}
		sc := &mcSQLConf{
			proxy: mysqlproxy.Config{Backend: baddr, User: *user, Password: password, BackendConns: *conns,
				Users: users, QueueTimeout: *queueTimeout,
				Logf: func(format string, args ...any) { logger.Warn(fmt.Sprintf(format, args...)) }},
			account: *account, schema: *schema, table: *table, key: *key, value: *value,
			flags: *flags, exptime: *exptime, cas: *cas,
		}
		return sc, sc.validate()
	}
}
