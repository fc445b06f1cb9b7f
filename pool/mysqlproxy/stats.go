package mysqlproxy

import (
	"sync/atomic"

	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
)

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
	PinServerState                    // the server reported a session state change the proxy does not replay
	PinUnlisted                       // without session tracking: a statement kind the proxy cannot classify
	NumPinReasons
)

// PinReasonNames are metric labels for the reasons, by index.
var PinReasonNames = [NumPinReasons]string{
	"transaction", "autocommit_off", "lock_tables", "get_lock", "user_variable",
	"temporary_table", "sql_calc_found_rows", "text_prepare", "cursor", "unknown_set", "local_infile",
	"server_state", "unlisted_statement",
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

	// ClientsTLS counts clients whose connection was upgraded to TLS
	// (SSLRequest, then a finished handshake); TLSClientsConnected is the
	// gauge of those still connected.
	ClientsTLS          atomic.Uint64
	TLSClientsConnected atomic.Int64

	// PendingLoginsRefused counts clients refused (ERR 1040) because
	// --max-pending-logins clients were connected and not logged in.
	PendingLoginsRefused atomic.Uint64

	// ClientWriteTimeouts counts clients cut off because their output
	// stayed over the high-water mark without progress for
	// Config.ClientWriteTimeout.
	ClientWriteTimeouts atomic.Uint64

	StateReplays atomic.Uint64 // COM_INIT_DB / SET / COM_SET_OPTION sent to sync a backend
	// IdentitySwitches counts COM_CHANGE_USER sent to log a backend in as
	// the account of the session about to use it (opIdentity).
	IdentitySwitches atomic.Uint64
	DiagnosticHolds  atomic.Uint64 // backends kept after a warning or error for SHOW WARNINGS
	// Pipelined counts commands written to a backend behind others
	// (Config.PipelineDepth); PipelineDepth is a histogram of how many
	// commands that backend had in flight then, this one included
	// (PipelineDepthBuckets); PipelineDepthSum adds the depths up.
	Pipelined        atomic.Uint64
	PipelineDepth    [len(PipelineDepthBuckets) + 1]atomic.Uint64
	PipelineDepthSum atomic.Uint64

	PinnedSessions atomic.Int64                 // gauge: sessions holding a backend between commands (or in a transaction whose BEGIN is deferred)
	Pins           [NumPinReasons]atomic.Uint64 // times a session became pinned for each reason

	PrepareCacheHits     atomic.Uint64 // PREPARE answered from the loop's cache
	BackendPrepares      atomic.Uint64 // COM_STMT_PREPARE sent to a backend
	BackendStmtEvictions atomic.Uint64 // COM_STMT_CLOSE sent to keep a backend under its bound
	Kills                atomic.Uint64 // sessions closed by KILL

	// Commands counts client commands by command byte (every command,
	// whether a backend or the proxy answered it); bytes above
	// CommandSlotOther share the last slot.
	Commands [NumCommandSlots]atomic.Uint64
	// Latency is the time from a command's arrival to the end of its
	// response (queue wait included).
	Latency pool.Histogram
	// Errors counts ERR packets sent to clients (the proxy's own and
	// relayed ones) by code, in the slots of ErrorCodes.
	Errors [NumErrorSlots]atomic.Uint64

	ClientBytesIn   atomic.Uint64 // bytes read from clients
	ClientBytesOut  atomic.Uint64 // bytes written to clients
	BackendBytesOut atomic.Uint64 // bytes written to backends

	// BackendStmtsOpen is a gauge of server-side prepared statements on
	// backends, moved by whichever loop prepares or forgets one (only the
	// sum over loops is meaningful).
	BackendStmtsOpen atomic.Int64
}

// NumCommandSlots is the size of Stats.Commands: one slot per command byte
// up to COM_CLONE, and CommandSlotOther for the rest.
const (
	CommandSlotOther = int(mysqlwire.ComClone) + 1
	NumCommandSlots  = CommandSlotOther + 1
)

// CommandSlotName is the metric label of a Stats.Commands slot.
func CommandSlotName(slot int) string {
	if slot >= CommandSlotOther {
		return "other"
	}
	return mysqlwire.Command(slot).String()
}

func commandSlot(c mysqlwire.Command) int {
	if int(c) < CommandSlotOther {
		return int(c)
	}
	return CommandSlotOther
}

// ErrorCodes are the error codes counted separately in Stats.Errors; any
// other code falls into the last slot ("other"), which keeps the label set
// bounded whatever the server sends.
var ErrorCodes = [...]mysqlwire.ErrCode{
	1040, // too many connections
	1045, // access denied
	1044, // access denied to database
	1046, // no database selected
	1047, // unknown command
	1049, // unknown database
	1054, // unknown column
	// 1053: server shutdown in progress, what a drain tells the sessions it closes.
	mysqlwire.ErServerShutdown,
	1062, // duplicate entry
	1064, // syntax error
	1146, // table does not exist
	1205, // lock wait timeout
	1213, // deadlock
	1243, // unknown prepared statement handler
	1290, // read-only / option prevents statement
	1317, // query interrupted
	1452, // foreign key constraint fails
	1969, // max_statement_time exceeded (MariaDB)
	3024, // max_execution_time exceeded (MySQL)
	ErQueueTimeout,
	ErBackendUnavailable,
	ErBackendLost,
	ErUnsupported,
	1203, // a tenant's max-clients
	1226, // a tenant's max-qps
	ErTenantMaxQueued,
	ErStatementTimeCap,
}

// NumErrorSlots is the size of Stats.Errors: ErrorCodes plus "other".
const NumErrorSlots = len(ErrorCodes) + 1

// ErrorSlotName is the metric label of a Stats.Errors slot.
func ErrorSlotName(slot int) string {
	if slot < len(ErrorCodes) {
		return itoa(int(ErrorCodes[slot]))
	}
	return "other"
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return string(b[i:])
}

func errorSlot(code mysqlwire.ErrCode) int {
	for i, c := range ErrorCodes {
		if c == code {
			return i
		}
	}
	return len(ErrorCodes)
}

// StatsSnapshot is a sum of Stats, and of the pool's counters, at one
// moment.
type StatsSnapshot struct {
	pool.StatsSnapshot

	ClientsConnected, PinnedSessions int64

	ClientsTLS          uint64
	TLSClientsConnected int64

	ClientsAccepted, ClientsRefused, AuthFailures, Questions, LocalAnswers uint64
	StateReplays, PrepareCacheHits, BackendPrepares                        uint64
	BackendStmtEvictions, Kills, DiagnosticHolds                           uint64
	Pipelined, PipelineDepthSum                                            uint64
	PipelineDepth                                                          [len(PipelineDepthBuckets) + 1]uint64
	Pins                                                                   [NumPinReasons]uint64

	Commands                      [NumCommandSlots]uint64
	Latency                       pool.HistogramSnapshot
	Errors                        [NumErrorSlots]uint64
	ClientBytesIn, ClientBytesOut uint64
	BackendBytesOut               uint64
	BackendStmtsOpen              int64
	ClientWriteTimeouts           uint64
	PendingLoginsRefused          uint64
	IdentitySwitches              uint64
	// PendingLogins is the gauge of clients connected and not logged in
	// yet (one proxy-wide count, not a per-loop sum).
	PendingLogins int64
}

func (s *Stats) addTo(o *StatsSnapshot) {
	o.ClientsConnected += s.ClientsConnected.Load()
	o.PinnedSessions += s.PinnedSessions.Load()
	o.ClientsTLS += s.ClientsTLS.Load()
	o.TLSClientsConnected += s.TLSClientsConnected.Load()
	o.ClientsAccepted += s.ClientsAccepted.Load()
	o.ClientsRefused += s.ClientsRefused.Load()
	o.PendingLoginsRefused += s.PendingLoginsRefused.Load()
	o.AuthFailures += s.AuthFailures.Load()
	o.Questions += s.Questions.Load()
	o.LocalAnswers += s.LocalAnswers.Load()
	o.ClientWriteTimeouts += s.ClientWriteTimeouts.Load()
	o.StateReplays += s.StateReplays.Load()
	o.IdentitySwitches += s.IdentitySwitches.Load()
	o.PrepareCacheHits += s.PrepareCacheHits.Load()
	o.BackendPrepares += s.BackendPrepares.Load()
	o.BackendStmtEvictions += s.BackendStmtEvictions.Load()
	o.Kills += s.Kills.Load()
	o.DiagnosticHolds += s.DiagnosticHolds.Load()
	o.Pipelined += s.Pipelined.Load()
	o.PipelineDepthSum += s.PipelineDepthSum.Load()
	for i := range s.PipelineDepth {
		o.PipelineDepth[i] += s.PipelineDepth[i].Load()
	}
	for i := range s.Pins {
		o.Pins[i] += s.Pins[i].Load()
	}
	for i := range s.Commands {
		o.Commands[i] += s.Commands[i].Load()
	}
	s.Latency.AddTo(&o.Latency)
	for i := range s.Errors {
		o.Errors[i] += s.Errors[i].Load()
	}
	o.ClientBytesIn += s.ClientBytesIn.Load()
	o.ClientBytesOut += s.ClientBytesOut.Load()
	o.BackendBytesOut += s.BackendBytesOut.Load()
	o.BackendStmtsOpen += s.BackendStmtsOpen.Load()
}

// PipelineDepthBuckets are the upper bounds of Stats.PipelineDepth's
// slots (the last slot counts deeper ones).
var PipelineDepthBuckets = [...]uint64{2, 3, 4, 6, 8, 12, 16, 32, 64}

// observePipelineDepth counts one pipelined command written with depth
// commands in flight on its backend.
func (s *Stats) observePipelineDepth(depth int) {
	i := 0
	for i < len(PipelineDepthBuckets) && uint64(depth) > PipelineDepthBuckets[i] {
		i++
	}
	s.PipelineDepth[i].Add(1)
	s.PipelineDepthSum.Add(uint64(depth))
}
