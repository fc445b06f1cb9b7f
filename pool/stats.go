package pool

import "sync/atomic"

type atomic32 = atomic.Int32

// PinReason says why a session keeps its backend connection between
// commands.
type PinReason uint8

// Pin reasons.
const (
	PinTransaction   PinReason = iota // SERVER_STATUS_IN_TRANS
	PinAutocommitOff                  // autocommit=0
	PinLockTables                     // LOCK TABLES / FLUSH TABLES WITH READ LOCK until UNLOCK TABLES
	PinGetLock                        // GET_LOCK()
	PinUserVariable                   // @x read or assigned
	PinTempTable                      // CREATE TEMPORARY TABLE
	PinCalcFoundRows                  // SQL_CALC_FOUND_ROWS
	PinTextPrepare                    // text-protocol PREPARE
	PinCursor                         // an open COM_STMT_EXECUTE cursor
	PinUnknownSet                     // a SET (or multi-statement state change) the proxy cannot replay
	PinLocalInfile                    // LOAD DATA LOCAL in progress
	NumPinReasons
)

// PinReasonNames are metric labels for the reasons, by index.
var PinReasonNames = [NumPinReasons]string{
	"transaction", "autocommit_off", "lock_tables", "get_lock", "user_variable",
	"temporary_table", "sql_calc_found_rows", "text_prepare", "cursor", "unknown_set", "local_infile",
}

func (r PinReason) String() string {
	if r < NumPinReasons {
		return PinReasonNames[r]
	}
	return "unknown"
}

// Stats are one loop's counters. Each field is written only by its loop
// (plain atomic adds, no sharing between loops) and may be read from any
// goroutine; Proxy.Stats sums them.
type Stats struct {
	ClientsConnected atomic.Int64  // gauge: authenticated or authenticating clients
	ClientsAccepted  atomic.Uint64 // clients that got a greeting
	ClientsRefused   atomic.Uint64 // over --max-clients (ERR 1040)
	AuthFailures     atomic.Uint64 // ERR 1045 sent
	Questions        atomic.Uint64 // client commands run on a backend
	LocalAnswers     atomic.Uint64 // client commands answered by the proxy itself

	QueueWaiting  atomic.Int64  // gauge: commands waiting for a backend
	QueueWaits    atomic.Uint64 // commands that had to wait
	QueueTimeouts atomic.Uint64 // waits that ended in ERR 9001
	QueueWaitNs   atomic.Uint64 // total time spent waiting

	BackendsConnected   atomic.Int64  // gauge: authenticated backend connections on this loop
	BackendsIdle        atomic.Int64  // gauge: of those, idle
	BackendConnects     atomic.Uint64 // successful logins
	BackendFailures     atomic.Uint64 // connects or logins that failed
	BackendUnknownState atomic.Uint64 // closed because their state was unknown
	BackendResets       atomic.Uint64 // COM_RESET_CONNECTION / COM_CHANGE_USER after a pinned client left
	BackendsAdopted     atomic.Uint64 // backends that moved here from another loop
	StateReplays        atomic.Uint64 // COM_INIT_DB / SET / COM_SET_OPTION sent to sync a backend
	DiagnosticHolds     atomic.Uint64 // backends kept after a warning or error for SHOW WARNINGS

	PinnedSessions atomic.Int64                 // gauge: sessions holding a backend between commands
	Pins           [NumPinReasons]atomic.Uint64 // times a session became pinned for each reason

	PrepareCacheHits     atomic.Uint64 // PREPARE answered from the loop's cache
	BackendPrepares      atomic.Uint64 // COM_STMT_PREPARE sent to a backend
	BackendStmtEvictions atomic.Uint64 // COM_STMT_CLOSE sent to keep a backend under its bound
	Kills                atomic.Uint64 // sessions closed by KILL
}

// StatsSnapshot is a sum of Stats at one moment.
type StatsSnapshot struct {
	ClientsConnected, QueueWaiting, BackendsConnected, BackendsIdle, PinnedSessions int64

	ClientsAccepted, ClientsRefused, AuthFailures, Questions, LocalAnswers uint64
	QueueWaits, QueueTimeouts, QueueWaitNs                                 uint64
	BackendConnects, BackendFailures, BackendUnknownState, BackendResets   uint64
	BackendsAdopted, StateReplays, PrepareCacheHits, BackendPrepares       uint64
	BackendStmtEvictions, Kills, DiagnosticHolds                           uint64
	Pins                                                                   [NumPinReasons]uint64
}

func (s *Stats) addTo(o *StatsSnapshot) {
	o.ClientsConnected += s.ClientsConnected.Load()
	o.QueueWaiting += s.QueueWaiting.Load()
	o.BackendsConnected += s.BackendsConnected.Load()
	o.BackendsIdle += s.BackendsIdle.Load()
	o.PinnedSessions += s.PinnedSessions.Load()
	o.ClientsAccepted += s.ClientsAccepted.Load()
	o.ClientsRefused += s.ClientsRefused.Load()
	o.AuthFailures += s.AuthFailures.Load()
	o.Questions += s.Questions.Load()
	o.LocalAnswers += s.LocalAnswers.Load()
	o.QueueWaits += s.QueueWaits.Load()
	o.QueueTimeouts += s.QueueTimeouts.Load()
	o.QueueWaitNs += s.QueueWaitNs.Load()
	o.BackendConnects += s.BackendConnects.Load()
	o.BackendFailures += s.BackendFailures.Load()
	o.BackendUnknownState += s.BackendUnknownState.Load()
	o.BackendResets += s.BackendResets.Load()
	o.BackendsAdopted += s.BackendsAdopted.Load()
	o.StateReplays += s.StateReplays.Load()
	o.PrepareCacheHits += s.PrepareCacheHits.Load()
	o.BackendPrepares += s.BackendPrepares.Load()
	o.BackendStmtEvictions += s.BackendStmtEvictions.Load()
	o.Kills += s.Kills.Load()
	o.DiagnosticHolds += s.DiagnosticHolds.Load()
	for i := range s.Pins {
		o.Pins[i] += s.Pins[i].Load()
	}
}
