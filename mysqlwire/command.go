package mysqlwire

// Command is the first payload byte of a client request.
type Command uint8

// Command bytes.
const (
	ComSleep            Command = 0x00
	ComQuit             Command = 0x01
	ComInitDB           Command = 0x02
	ComQuery            Command = 0x03
	ComFieldList        Command = 0x04
	ComCreateDB         Command = 0x05
	ComDropDB           Command = 0x06
	ComRefresh          Command = 0x07
	ComShutdown         Command = 0x08
	ComStatistics       Command = 0x09
	ComProcessInfo      Command = 0x0A
	ComConnect          Command = 0x0B
	ComProcessKill      Command = 0x0C
	ComDebug            Command = 0x0D
	ComPing             Command = 0x0E
	ComTime             Command = 0x0F
	ComDelayedInsert    Command = 0x10
	ComChangeUser       Command = 0x11
	ComBinlogDump       Command = 0x12
	ComTableDump        Command = 0x13
	ComConnectOut       Command = 0x14
	ComRegisterSlave    Command = 0x15
	ComStmtPrepare      Command = 0x16
	ComStmtExecute      Command = 0x17
	ComStmtSendLongData Command = 0x18
	ComStmtClose        Command = 0x19
	ComStmtReset        Command = 0x1A
	ComSetOption        Command = 0x1B
	ComStmtFetch        Command = 0x1C
	ComDaemon           Command = 0x1D
	ComBinlogDumpGTID   Command = 0x1E
	ComResetConnection  Command = 0x1F
	ComClone            Command = 0x20 // MySQL 8 only
	// ComStmtBulkExecute is MariaDB's array-binding execute
	// (MARIADB_CLIENT_STMT_BULK_OPERATIONS).
	ComStmtBulkExecute Command = 0xFA
	// ComMulti is MariaDB's batched command (MARIADB_CLIENT_COM_MULTI); it was
	// never enabled in a GA server.
	ComMulti Command = 0xFE
)

var commandNames = [...]string{
	"COM_SLEEP", "COM_QUIT", "COM_INIT_DB", "COM_QUERY", "COM_FIELD_LIST",
	"COM_CREATE_DB", "COM_DROP_DB", "COM_REFRESH", "COM_SHUTDOWN",
	"COM_STATISTICS", "COM_PROCESS_INFO", "COM_CONNECT", "COM_PROCESS_KILL",
	"COM_DEBUG", "COM_PING", "COM_TIME", "COM_DELAYED_INSERT",
	"COM_CHANGE_USER", "COM_BINLOG_DUMP", "COM_TABLE_DUMP", "COM_CONNECT_OUT",
	"COM_REGISTER_SLAVE", "COM_STMT_PREPARE", "COM_STMT_EXECUTE",
	"COM_STMT_SEND_LONG_DATA", "COM_STMT_CLOSE", "COM_STMT_RESET",
	"COM_SET_OPTION", "COM_STMT_FETCH", "COM_DAEMON", "COM_BINLOG_DUMP_GTID",
	"COM_RESET_CONNECTION", "COM_CLONE",
}

// String returns the protocol name of the command, e.g. "COM_QUERY".
func (c Command) String() string {
	switch {
	case int(c) < len(commandNames):
		return commandNames[c]
	case c == ComStmtBulkExecute:
		return "COM_STMT_BULK_EXECUTE"
	case c == ComMulti:
		return "COM_MULTI"
	}
	return "COM_UNKNOWN"
}

// CommandOf returns the command byte of a request payload; ok is false for
// an empty payload.
func CommandOf(payload []byte) (Command, bool) {
	if len(payload) == 0 {
		return 0, false
	}
	return Command(payload[0]), true
}

// HasStatementID reports whether a request for c starts (after the command
// byte) with a 4-byte statement id that a proxy must translate.
func (c Command) HasStatementID() bool {
	switch c {
	case ComStmtExecute, ComStmtSendLongData, ComStmtClose, ComStmtReset, ComStmtFetch, ComStmtBulkExecute:
		return true
	}
	return false
}

// ExpectsResponse reports whether the server answers c at all. COM_QUIT,
// COM_STMT_CLOSE and COM_STMT_SEND_LONG_DATA get no reply.
func (c Command) ExpectsResponse() bool {
	switch c {
	case ComQuit, ComStmtClose, ComStmtSendLongData:
		return false
	}
	return true
}
