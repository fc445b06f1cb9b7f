package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/scalestack/scalestack/pool"
	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

// Tenants in the mysqlproxy configuration file:
//
//	[tenants]            # defaults for tenants not listed (optional)
//	max-queued = 1000
//
//	[tenants.shop]       # one table per tenant (users-file field tenant=shop)
//	weight = 3
//	min-backends = 2
//	max-qps = 500
//	max-statement-time = "5s"
//
// The tables are read at start and again on every reload (SIGHUP or POST
// /reload); a reload applies them without dropping a client.

// tenantKeys are the settings a tenant table may hold, with their help.
var tenantKeys = map[string]string{
	"weight":             "share of the backends against other tenants with waiting commands (1 to 1000; default 1)",
	"min-backends":       "while it has commands waiting and holds fewer backends than this, the tenant gets the next free backend first",
	"max-backends":       "the tenant never holds more backends at once",
	"max-clients":        "logins beyond this many of the tenant's clients get ERR 1203 (42000)",
	"max-queued":         "a command that would wait while this many of the tenant's wait gets ERR 9006 (HY000) at once",
	"queue-timeout":      "replaces --queue-timeout for the tenant (ERR 9001)",
	"max-qps":            "commands per second (a token bucket holding one second of them); beyond it ERR 1226 (42000)",
	"max-statement-time": "the server's max_statement_time for the tenant's sessions (a longer statement gets the server's ERR 1969 (70100)); statements that would raise it get ERR 9007 (42000)",
}

// readTenants reads the [tenants] tables of the configuration file at path
// ("" : none).
func readTenants(path string, backendConns int) (mysqlproxy.Tenants, error) {
	ts := mysqlproxy.Tenants{Rules: map[string]pool.TenantRules{}}
	if path == "" {
		return ts, nil
	}
	cf, err := readConfigFile(path)
	if err != nil {
		return ts, err
	}
	return parseTenants(cf, backendConns)
}

func parseTenants(cf *configFile, backendConns int) (mysqlproxy.Tenants, error) {
	ts := mysqlproxy.Tenants{Rules: map[string]pool.TenantRules{}}
	raw, ok := cf.values["tenants"]
	if !ok {
		return ts, nil
	}
	table, ok := raw.(map[string]any)
	if !ok {
		return ts, cf.errAt(nil, "tenants", "tenants: want tables, [tenants.NAME]")
	}
	var errs configErrors
	defaults := map[string]any{}
	var names []string
	for k, v := range table {
		if _, isTable := v.(map[string]any); isTable {
			names = append(names, k)
		} else {
			defaults[k] = v
		}
	}
	sort.Strings(names)
	ts.Default, errs = tenantRules(cf, []string{"tenants"}, defaults, errs)
	minSum := 0
	for _, name := range names {
		where := []string{"tenants", name}
		if !mysqlproxy.ValidTenantName(name) {
			errs = append(errs, cf.errAt([]string{"tenants"}, name, fmt.Sprintf("[tenants.%s]: a tenant name is 1 to 64 letters, digits, '_', '-' or '.'", name)))
			continue
		}
		var r pool.TenantRules
		r, errs = tenantRules(cf, where, table[name].(map[string]any), errs)
		ts.Rules[name] = r
		minSum += r.MinBackends
	}
	if backendConns > 0 && minSum > backendConns {
		errs = append(errs, cf.errAt(nil, "tenants", fmt.Sprintf("the tenants' min-backends add up to %d, more than --backend-conns %d", minSum, backendConns)))
	}
	if len(errs) > 0 {
		return ts, errs
	}
	return ts, nil
}

// tenantRules reads one tenant table (or the defaults), appending its
// mistakes to errs.
func tenantRules(cf *configFile, where []string, values map[string]any, errs configErrors) (pool.TenantRules, configErrors) {
	var r pool.TenantRules
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := func(key, msg string) {
		errs = append(errs, cf.errAt(where, key, fmt.Sprintf("[%s] %s: %s", strings.Join(where, "."), key, msg)))
	}
	for _, key := range keys {
		v := values[key]
		if _, ok := tenantKeys[key]; !ok {
			known := make([]string, 0, len(tenantKeys))
			for k := range tenantKeys {
				known = append(known, k)
			}
			sort.Strings(known)
			bad(key, "unknown tenant setting (known: "+strings.Join(known, ", ")+")")
			continue
		}
		switch key {
		case "queue-timeout", "max-statement-time":
			s, ok := v.(string)
			d, err := time.ParseDuration(s)
			if !ok || err != nil || d < 0 {
				bad(key, fmt.Sprintf("want a duration such as \"2s\", got %v", v))
				continue
			}
			if key == "queue-timeout" {
				r.QueueTimeout = d
			} else {
				if d > 0 && d < time.Millisecond {
					bad(key, "below the server's resolution of 1ms")
					continue
				}
				r.StatementTime = d
			}
		case "max-qps":
			var f float64
			switch x := v.(type) {
			case int64:
				f = float64(x)
			case float64:
				f = x
			default:
				bad(key, fmt.Sprintf("want a number, got %v", v))
				continue
			}
			if f < 0 {
				bad(key, "want 0 (no limit) or more")
				continue
			}
			r.MaxQPS = f
		default:
			n, ok := v.(int64)
			if !ok || n < 0 || n > 1<<20 {
				bad(key, fmt.Sprintf("want a whole number from 0, got %v", v))
				continue
			}
			switch key {
			case "weight":
				if n < 1 || n > 1000 {
					bad(key, "want 1 to 1000")
					continue
				}
				r.Weight = int(n)
			case "min-backends":
				r.MinBackends = int(n)
			case "max-backends":
				r.MaxBackends = int(n)
			case "max-clients":
				r.MaxClients = int(n)
			case "max-queued":
				r.MaxQueued = int(n)
			}
		}
	}
	if r.MaxBackends > 0 && r.MinBackends > r.MaxBackends {
		bad("min-backends", fmt.Sprintf("%d is more than max-backends %d", r.MinBackends, r.MaxBackends))
	}
	return r, errs
}

// tenantStatus is one tenant in /status.
type tenantStatus struct {
	Name             string            `json:"name"`
	Weight           int               `json:"weight"`
	MinBackends      int               `json:"min_backends,omitempty"`
	MaxBackends      int               `json:"max_backends,omitempty"`
	MaxClients       int               `json:"max_clients,omitempty"`
	MaxQueued        int               `json:"max_queued,omitempty"`
	QueueTimeout     string            `json:"queue_timeout,omitempty"`
	MaxQPS           float64           `json:"max_qps,omitempty"`
	MaxStatementTime string            `json:"max_statement_time,omitempty"`
	Clients          int64             `json:"clients"`
	BackendsHeld     int64             `json:"backends_held"`
	Queued           int64             `json:"queued"`
	Commands         uint64            `json:"commands"`
	QueueWaits       uint64            `json:"queue_waits"`
	QueueWaitSeconds float64           `json:"queue_wait_seconds_total"`
	BackendSeconds   float64           `json:"backend_seconds_total"`
	Refused          map[string]uint64 `json:"refused"`
	ImpliedByAccount bool              `json:"implied_by_account,omitempty"`
	SharePercent     float64           `json:"backend_share_percent"`
}

// tenantsStatus lists the tenants for /status: those named by the
// configuration or a users-file tenant field, and with perUser those an
// account implies by its own name.
func tenantsStatus(p *mysqlproxy.Proxy, perUser bool) []tenantStatus {
	out := []tenantStatus{}
	var total float64
	for _, s := range p.TenantStats() {
		if !s.Named && !perUser {
			continue
		}
		ts := tenantStatus{Name: s.Name, Weight: s.Rules.Weight, MinBackends: s.Rules.MinBackends,
			MaxBackends: s.Rules.MaxBackends, MaxClients: s.Rules.MaxClients, MaxQueued: s.Rules.MaxQueued,
			MaxQPS: s.Rules.MaxQPS, Clients: s.Clients, BackendsHeld: s.Held, Queued: s.Queued,
			Commands: s.Commands, QueueWaits: s.QueueWaits, QueueWaitSeconds: float64(s.QueueWait.SumNs) / 1e9,
			BackendSeconds: float64(s.BackendNs) / 1e9, Refused: map[string]uint64{}, ImpliedByAccount: !s.Named}
		if s.Rules.QueueTimeout > 0 {
			ts.QueueTimeout = s.Rules.QueueTimeout.String()
		}
		if s.Rules.StatementTime > 0 {
			ts.MaxStatementTime = s.Rules.StatementTime.String()
		}
		for r, n := range s.Refused {
			ts.Refused[pool.Refusal(r).String()] = n
		}
		total += ts.BackendSeconds
		out = append(out, ts)
	}
	if total > 0 {
		for i := range out {
			out[i].SharePercent = 100 * out[i].BackendSeconds / total
		}
	}
	return out
}
