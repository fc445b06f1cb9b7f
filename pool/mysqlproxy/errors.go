package mysqlproxy

import (
	"fmt"

	"github.com/scalestack/scalestack/mysqlwire"
)

// proxyErr names one error the proxy sends on its own. proxyErrors gives
// each its code, SQLSTATE and message in one place, so that a code always
// goes out with the same SQLSTATE and wording (the server's own where the
// proxy answers in its stead), and the package documentation can list
// them from one table.
type proxyErr uint8

const (
	errTooManyConnections proxyErr = iota
	errAccessDenied                // args: user, host, "YES"/"NO"
	errBadHandshake
	errPacketTooLarge
	errPacketsOutOfOrder
	errUnknownCommand
	errMalformedPacket
	errNoDatabase
	errEmptyQuery
	errNoSuchThread // args: thread id
	errTooManyStatements
	errUnknownStatement   // args: statement id, the command's server-side name
	errStatementVanished  // a statement the backend should have had
	errNoCursor           // args: statement id
	errLongDataTooLarge   // long data over the session's bound
	errServerShutdown     // the drain's deadline passed
	errQueueTimeout       // 9001
	errBackendUnavailable // 9003
	errBackendLost        // 9004
	errKillUnsupported    // 9005
	errPrivilegeNeeded    // args: privilegeMessages' text (1227)
	errQueryInterrupted   // 1317: KILL QUERY of the session's own id
	errConnectionKilled   // 1927: KILL of the session's own id
	errUnknownDatabase    // args: schema (1049, from the proxy's cache of the server's answer)
	errTenantMaxClients   // args: tenant (1203)
	errTenantMaxQPS       // args: tenant, max-qps (1226)
	errTenantMaxQueued    // args: tenant, max-queued (9006)
	errStatementTimeCap   // args: the cap in seconds, tenant (9007)
	errIdentityUnusable   // args: account, reason (1045: a backend cannot log in as the session's account)
	numProxyErrs
)

// The proxy's own error codes sit in a range no server uses, so that
// clients and logs can tell the proxy's answers from the server's.
const (
	ErQueueTimeout       mysqlwire.ErrCode = 9001 // waited Config.QueueTimeout for a backend
	ErBackendUnavailable mysqlwire.ErrCode = 9003 // no backend can be reached
	ErBackendLost        mysqlwire.ErrCode = 9004 // the backend broke before the response began
	ErUnsupported        mysqlwire.ErrCode = 9005 // a form the proxy does not support
	ErTenantMaxQueued    mysqlwire.ErrCode = 9006 // the tenant's max-queued commands wait already
	ErStatementTimeCap   mysqlwire.ErrCode = 9007 // a statement would lift the tenant's max-statement-time
)

// shutdownMessage is ER_SERVER_SHUTDOWN's text, as a server sends it.
const shutdownMessage = "Server shutdown in progress"

var proxyErrors = [numProxyErrs]struct {
	code   mysqlwire.ErrCode
	state  string
	format string // fmt verbs only where the entry takes args
}{
	errTooManyConnections: {mysqlwire.ErConCountError, "08004", "Too many connections"},
	errAccessDenied:       {mysqlwire.ErAccessDenied, "28000", "Access denied for user '%s'@'%s' (using password: %s)"},
	errBadHandshake:       {mysqlwire.ErHandshakeError, "08S01", "Bad handshake"},
	errPacketTooLarge:     {mysqlwire.ErNetPacketTooLarge, "08S01", "Got a packet bigger than 'max_allowed_packet' bytes"},
	errPacketsOutOfOrder:  {mysqlwire.ErNetPacketsOutOfOrder, "08S01", "Got packets out of order"},
	errUnknownCommand:     {mysqlwire.ErUnknownComError, "08S01", "Unknown command"},
	errMalformedPacket:    {mysqlwire.ErUnknownComError, "08S01", "Malformed packet"},
	errNoDatabase:         {mysqlwire.ErNoDBError, "3D000", "No database selected"},
	errEmptyQuery:         {mysqlwire.ErEmptyQuery, "42000", "Query was empty"},
	errNoSuchThread:       {mysqlwire.ErNoSuchThread, "HY000", "Unknown thread id: %d"},
	errTooManyStatements:  {mysqlwire.ErMaxPreparedStmtCount, "42000", "Can't create more than max_prepared_stmt_count statements"},
	errUnknownStatement:   {mysqlwire.ErUnknownStmtHandler, "HY000", "Unknown prepared statement handler (%d) given to %s"},
	errStatementVanished:  {mysqlwire.ErUnknownStmtHandler, "HY000", "Prepared statement vanished from the backend"},
	errNoCursor:           {errStmtNoCursor, "HY000", "The statement (%d) has no open cursor"},
	errLongDataTooLarge: {mysqlwire.ErUnknownError, "HY000",
		"Parameter of prepared statement which is set through mysql_send_long_data() is longer than 'max_allowed_packet' bytes"},
	errServerShutdown: {mysqlwire.ErServerShutdown, "08S01", shutdownMessage},
	errQueueTimeout: {ErQueueTimeout, "HY000",
		"Timed out waiting for a backend connection (all are busy); retry later"},
	errBackendUnavailable: {ErBackendUnavailable, "HY000",
		"No backend connection is available: the database server cannot be reached; retry later"},
	errBackendLost:      {ErBackendLost, "08S01", "Lost connection to the backend server during query"},
	errKillUnsupported:  {ErUnsupported, "0A000", "This form of KILL is not supported by the proxy"},
	errPrivilegeNeeded:  {mysqlwire.ErSpecificAccessDenied, "42000", "%s"},
	errQueryInterrupted: {mysqlwire.ErQueryInterrupted, "70100", "Query execution was interrupted"},
	errConnectionKilled: {erConnectionKilled, "70100", "Connection was killed"},
	errUnknownDatabase:  {mysqlwire.ErBadDBError, "42000", "Unknown database '%s'"},
	// The server's codes for its per-account resource limits, with the
	// tenant's name where the server names the account.
	errTenantMaxClients: {mysqlwire.ErTooManyUserConnections, "42000",
		"Tenant '%s' already has more than 'max-clients' active connections"},
	errTenantMaxQPS: {mysqlwire.ErUserLimitReached, "42000",
		"Tenant '%s' has exceeded the 'max-qps' resource (current value: %d)"},
	errTenantMaxQueued: {ErTenantMaxQueued, "HY000",
		"Too many commands of tenant '%s' are waiting for a backend connection (max-queued %d); retry later"},
	errStatementTimeCap: {ErStatementTimeCap, "42000",
		"max_statement_time is limited to %s s for tenant '%s': only SET max_statement_time to a value up to that is allowed"},
	errIdentityUnusable: {mysqlwire.ErAccessDenied, "28000", "Access denied for user '%s' on the database server: %s"},
}

// erConnectionKilled is MariaDB's ER_CONNECTION_KILLED.
const erConnectionKilled mysqlwire.ErrCode = 1927

// message formats e's text; an entry without args costs no allocation.
func (e proxyErr) message(args ...any) string {
	if len(args) == 0 {
		return proxyErrors[e].format
	}
	return fmt.Sprintf(proxyErrors[e].format, args...)
}

// appendERR appends e as an ERR packet with sequence id seq.
func (e proxyErr) appendERR(dst []byte, seq uint8, args ...any) ([]byte, uint8) {
	pe := &proxyErrors[e]
	return mysqlwire.AppendERR(dst, seq, pe.code, pe.state, e.message(args...))
}
