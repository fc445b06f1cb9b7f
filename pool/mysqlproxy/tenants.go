package mysqlproxy

import (
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/scalestack/scalestack/pool"
)

// Tenants: every account belongs to one tenant (User.TenantName: the
// users-file field tenant=NAME, or the account's own name), and
// a session's commands wait for backends in its tenant's queue (see
// package pool: weighted fair queueing between tenants). The rules come
// from Config.Tenants and change live (SetTenants); what each does here:
//
//   - MaxClients: a login (or COM_CHANGE_USER) beyond it gets ERR 1203
//     (42000) and the connection is closed.
//   - MaxQPS: a command beyond the token bucket gets ERR 1226 (42000);
//     the session stays usable. Commands the proxy answers itself (COM_PING,
//     SELECT CONNECTION_ID(), a cached PREPARE...) are not counted.
//   - MaxQueued: a command that would wait while that many of the
//     tenant's commands wait already gets ERR 9006 (HY000) at once.
//   - QueueTimeout: as --queue-timeout, ERR 9001 (HY000).
//   - StatementTime: the session's max_statement_time (MariaDB's own
//     statement timeout: a statement running longer is stopped by the
//     server with ERR 1969 (70100) "Query execution was interrupted
//     (max_statement_time exceeded)"). It is the session's value from its
//     login, replayed on every backend with the other tracked variables; a
//     client's SET of a higher value (or 0, or DEFAULT) is lowered to it,
//     and any other statement naming max_statement_time (SET STATEMENT ...
//     FOR, a multi-statement, a prepared SET, a stored program's body) is
//     refused with ERR 9007 (42000), except a single SELECT or SHOW.

// Tenants are the tenants' rules: Rules by tenant name, Default for every
// tenant not listed.
type Tenants struct {
	Default pool.TenantRules
	Rules   map[string]pool.TenantRules
}

// ValidTenantName reports whether name can name a tenant (as in the users
// file's tenant field).
func ValidTenantName(name string) bool { return validTenantName(name) }

// rules returns the rules of the tenant named name.
func (ts *Tenants) rules(name string) pool.TenantRules {
	if r, ok := ts.Rules[name]; ok {
		return r
	}
	return ts.Default
}

// tenantTable maps the accounts of the users file to their tenants; it is
// rebuilt when the users or the tenants' rules change and read by logins
// through an atomic pointer.
type tenantTable struct {
	byAccount map[string]*pool.Tenant
	// named are the tenants named by the configuration or a users-file
	// tenant field, rather than implied by an account's own name (whose
	// series are exported only with --per-user-metrics).
	named map[string]bool
}

// SetTenants makes ts the tenants' rules: tenants listed get theirs, the
// others ts.Default. Sessions logged in keep their tenant; every limit
// applies from its next check (a lowered max-clients closes nobody).
func (p *Proxy) SetTenants(ts Tenants) {
	p.tenantRules.Store(&ts)
	p.rebuildTenants()
}

// rebuildTenants maps the current accounts to their tenants and gives
// every tenant its current rules.
func (p *Proxy) rebuildTenants() {
	p.tenantsMu.Lock()
	defer p.tenantsMu.Unlock()
	ts := p.tenantRules.Load()
	if ts == nil {
		ts = &Tenants{}
	}
	users := p.users.Load()
	tt := &tenantTable{byAccount: map[string]*pool.Tenant{}, named: map[string]bool{}}
	for name := range ts.Rules {
		tt.named[name] = true
		p.pool.Tenant(name, ts.rules(name))
	}
	if users != nil {
		for name, u := range *users {
			tn := u.TenantName()
			if tn != name {
				tt.named[tn] = true
			}
			tt.byAccount[name] = p.pool.Tenant(tn, ts.rules(tn))
		}
	}
	for _, snap := range p.pool.Tenants() {
		p.pool.Tenant(snap.Name, pool.TenantRules{}).SetRules(ts.rules(snap.Name))
	}
	p.tenantTable.Store(tt)
}

// tenantOf returns u's tenant; an account not in the table (one removed
// by a reload while logging in) gets the tenant of its name.
func (p *Proxy) tenantOf(u *User) *pool.Tenant {
	if t := p.tenantTable.Load().byAccount[u.Name]; t != nil {
		return t
	}
	name := u.TenantName()
	return p.pool.Tenant(name, p.tenantRules.Load().rules(name))
}

// TenantStats are the tenants' counters and state, by name; Named is false
// for a tenant implied by an account's own name.
type TenantStats struct {
	pool.TenantSnapshot
	Named bool
}

// TenantStats returns every tenant's counters.
func (p *Proxy) TenantStats() []TenantStats {
	tt := p.tenantTable.Load()
	snaps := p.pool.Tenants()
	out := make([]TenantStats, len(snaps))
	for i, s := range snaps {
		out[i] = TenantStats{TenantSnapshot: s, Named: tt.named[s.Name]}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// joinTenant makes the session one of u's tenant's clients (login or
// COM_CHANGE_USER), leaving its previous tenant; false: the tenant has
// max-clients clients (the session belongs to none then).
func (s *session) joinTenant(u *User) bool {
	s.leaveTenant()
	t := s.p.tenantOf(u)
	if !t.AddClient(s.pl.id) {
		return false
	}
	s.wait.Tenant = t
	s.stmtCapMs = -1 // applyStatementTime sets the session's value
	return true
}

// leaveTenant counts the session out of its tenant.
func (s *session) leaveTenant() {
	if t := s.wait.Tenant; t != nil {
		t.RemoveClient()
		s.wait.Tenant = nil
	}
}

// admitCommand counts a command of the session's tenant and takes a token
// from its max-qps bucket: false when the bucket is empty (the client was
// answered ERR 1226).
func (s *session) admitCommand() bool {
	t := s.wait.Tenant
	if t == nil {
		return true
	}
	if !t.AllowCommand(s.pl.id) {
		s.writeERR(errTenantMaxQPS, t.Name(), int64(t.Rules().MaxQPS))
		return false
	}
	t.Stats(s.pl.id).Commands.Add(1)
	s.applyStatementTime()
	return true
}

// applyStatementTime brings the session's max_statement_time to its
// tenant's rule when the rule changed since the session last applied it
// (login, COM_CHANGE_USER, a reload): the rule becomes the session's
// value unless the session holds a lower one of its own.
func (s *session) applyStatementTime() {
	d := s.wait.Tenant.Rules().StatementTime.Milliseconds()
	if d > math.MaxInt32 {
		d = math.MaxInt32
	}
	if int32(d) == s.stmtCapMs {
		return
	}
	limit := time.Duration(d) * time.Millisecond
	cur := s.st.varValue(varMaxStatementTime)
	if s.stmtCapMs < 0 || cur == statementTimeText(time.Duration(s.stmtCapMs)*time.Millisecond) || exceedsStatementTime(cur, limit) {
		s.st.setVar(varMaxStatementTime, statementTimeText(limit))
	}
	s.stmtCapMs = int32(d)
}

// statementTimeText is d as a max_statement_time value (seconds); "" (the
// server's default) for 0.
func statementTimeText(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64)
}

// exceedsStatementTime reports whether max_statement_time value (SQL text;
// "" or DEFAULT: the server's default, taken as no limit) allows more than
// limit (0: no limit). What is not a plain number counts as more.
func exceedsStatementTime(value string, limit time.Duration) bool {
	if limit <= 0 {
		return false
	}
	if value == "" {
		return true
	}
	f, err := strconv.ParseFloat(trimQuotes(value), 64)
	if err != nil || f <= 0 {
		return true
	}
	return f > limit.Seconds()
}

func trimQuotes(v string) string {
	if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
		return v[1 : len(v)-1]
	}
	return v
}

// statementTimeCapped reports whether the session's tenant caps
// max_statement_time.
func (s *session) statementTimeCapped() (time.Duration, bool) {
	if t := s.wait.Tenant; t != nil {
		if d := t.Rules().StatementTime; d > 0 {
			return d, true
		}
	}
	return 0, false
}

// namesStatementTime reports whether sql mentions max_statement_time
// (any case), without allocating.
func namesStatementTime(sql []byte) bool {
	const w = "max_statement_time"
	for i := 0; i+len(w) <= len(sql); i++ {
		if equalFoldLower(sql[i:i+len(w)], w) {
			return true
		}
	}
	return false
}

// changeTenant moves a session that COM_CHANGE_USER logged in as s.user
// to that account's tenant; false: refused (ERR 1203, the connection is
// closed).
func (s *session) changeTenant() bool {
	if s.joinTenant(s.user) {
		return true
	}
	s.writeERR(errTenantMaxClients, s.p.tenantOf(s.user).Name())
	s.c.Close()
	return false
}

// liftsStatementTime refuses, with ERR 9007, a statement of a session
// whose tenant caps max_statement_time that could raise or lift it: one
// naming max_statement_time other than a single SELECT or SHOW, or a
// single SET of it to at most the cap (not for a prepared statement,
// whose SET the proxy does not track). It reports whether it refused.
func (s *session) liftsStatementTime(sql []byte, qi *queryInfo, prepared bool) bool {
	limit, capped := s.statementTimeCapped()
	if !capped || !namesStatementTime(sql) || s.statementTimeKept(sql, qi, prepared, limit) {
		return false
	}
	s.local()
	s.writeERR(errStatementTimeCap, statementTimeText(limit), s.wait.Tenant.Name())
	return true
}

func (s *session) statementTimeKept(sql []byte, qi *queryInfo, prepared bool, limit time.Duration) bool {
	if qi.feats&featMulti != 0 {
		return false
	}
	switch qi.kind {
	case stmtSelect, stmtReadSysVars:
		return true
	case stmtSet:
		if prepared {
			return false
		}
		var plan setPlan
		if parseSET(sql, s.noBackslash, &plan) != setTracked {
			return false
		}
		for i := 0; i < plan.n; i++ {
			a := &plan.assigns[i]
			if a.v == varMaxStatementTime && (a.value == nil || exceedsStatementTime(string(a.value), limit)) {
				return false
			}
		}
		return true
	}
	lx := lexer{src: sql, noBackslash: s.noBackslash}
	return lx.is(lx.next(), "SHOW")
}
