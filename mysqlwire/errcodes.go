package mysqlwire

// ErrCode is a MySQL/MariaDB error number as carried by an ERR packet.
type ErrCode uint16

// Server error codes a proxy meets or sends itself.
const (
	ErCantCreateDB             ErrCode = 1006
	ErDBCreateExists           ErrCode = 1007
	ErConCountError            ErrCode = 1040
	ErOutOfResources           ErrCode = 1041
	ErBadHostError             ErrCode = 1042
	ErHandshakeError           ErrCode = 1043
	ErDBAccessDenied           ErrCode = 1044
	ErAccessDenied             ErrCode = 1045
	ErNoDBError                ErrCode = 1046
	ErUnknownComError          ErrCode = 1047
	ErBadNullError             ErrCode = 1048
	ErBadDBError               ErrCode = 1049
	ErTableExists              ErrCode = 1050
	ErBadTableError            ErrCode = 1051
	ErServerShutdown           ErrCode = 1053
	ErBadFieldError            ErrCode = 1054
	ErDupEntry                 ErrCode = 1062
	ErParseError               ErrCode = 1064
	ErEmptyQuery               ErrCode = 1065
	ErNoSuchThread             ErrCode = 1094
	ErKillDenied               ErrCode = 1095
	ErUnknownError             ErrCode = 1105
	ErUnknownProcedure         ErrCode = 1106
	ErHostNotPrivileged        ErrCode = 1130
	ErPasswordNoMatch          ErrCode = 1133
	ErNoSuchTable              ErrCode = 1146
	ErNotAllowedCommand        ErrCode = 1148
	ErSyntaxError              ErrCode = 1149
	ErAbortingConnection       ErrCode = 1152
	ErNetPacketTooLarge        ErrCode = 1153
	ErNetReadErrorFromPipe     ErrCode = 1154
	ErNetFcntlError            ErrCode = 1155
	ErNetPacketsOutOfOrder     ErrCode = 1156
	ErNetUncompressError       ErrCode = 1157
	ErNetReadError             ErrCode = 1158
	ErNetReadInterrupted       ErrCode = 1159
	ErNetErrorOnWrite          ErrCode = 1160
	ErNetWriteInterrupted      ErrCode = 1161
	ErNewAbortingConnection    ErrCode = 1184
	ErTooManyUserConnections   ErrCode = 1203
	ErLockWaitTimeout          ErrCode = 1205
	ErReadOnlyTransaction      ErrCode = 1207
	ErWrongArguments           ErrCode = 1210
	ErLockDeadlock             ErrCode = 1213
	ErUserLimitReached         ErrCode = 1226
	ErSpecificAccessDenied     ErrCode = 1227
	ErUnknownStmtHandler       ErrCode = 1243
	ErNotSupportedAuthMode     ErrCode = 1251
	ErUnsupportedPS            ErrCode = 1295
	ErQueryInterrupted         ErrCode = 1317
	ErSPWrongNoOfArgs          ErrCode = 1318
	ErMaxPreparedStmtCount     ErrCode = 1461
	ErCantExecuteInReadOnlyTxn ErrCode = 1792
	ErMustChangePassword       ErrCode = 1820
	ErStatementTimeout         ErrCode = 1969 // MariaDB max_statement_time exceeded

	// Client library codes; proxies send them to mean the backend link broke.
	CrServerGoneError ErrCode = 2006
	CrServerLost      ErrCode = 2013
)

// errSQLStates maps codes to their SQLSTATE. Codes missing here use HY000,
// the generic SQLSTATE the server itself uses for unmapped errors.
var errSQLStates = map[ErrCode]string{
	ErCantCreateDB:             "HY000",
	ErDBCreateExists:           "HY000",
	ErConCountError:            "08004",
	ErOutOfResources:           "HY000",
	ErBadHostError:             "08S01",
	ErHandshakeError:           "08S01",
	ErDBAccessDenied:           "42000",
	ErAccessDenied:             "28000",
	ErNoDBError:                "3D000",
	ErUnknownComError:          "08S01",
	ErBadNullError:             "23000",
	ErBadDBError:               "42000",
	ErTableExists:              "42S01",
	ErBadTableError:            "42S02",
	ErServerShutdown:           "08S01",
	ErBadFieldError:            "42S22",
	ErDupEntry:                 "23000",
	ErParseError:               "42000",
	ErEmptyQuery:               "42000",
	ErNoSuchThread:             "HY000",
	ErKillDenied:               "HY000",
	ErUnknownError:             "HY000",
	ErUnknownProcedure:         "42000",
	ErHostNotPrivileged:        "HY000",
	ErPasswordNoMatch:          "28000",
	ErNoSuchTable:              "42S02",
	ErNotAllowedCommand:        "42000",
	ErSyntaxError:              "42000",
	ErAbortingConnection:       "08S01",
	ErNetPacketTooLarge:        "08S01",
	ErNetReadErrorFromPipe:     "08S01",
	ErNetFcntlError:            "08S01",
	ErNetPacketsOutOfOrder:     "08S01",
	ErNetUncompressError:       "08S01",
	ErNetReadError:             "08S01",
	ErNetReadInterrupted:       "08S01",
	ErNetErrorOnWrite:          "08S01",
	ErNetWriteInterrupted:      "08S01",
	ErNewAbortingConnection:    "08S01",
	ErTooManyUserConnections:   "42000",
	ErLockWaitTimeout:          "HY000",
	ErReadOnlyTransaction:      "25000",
	ErWrongArguments:           "HY000",
	ErLockDeadlock:             "40001",
	ErUserLimitReached:         "42000",
	ErSpecificAccessDenied:     "42000",
	ErUnknownStmtHandler:       "HY000",
	ErNotSupportedAuthMode:     "08004",
	ErUnsupportedPS:            "HY000",
	ErQueryInterrupted:         "70100",
	ErSPWrongNoOfArgs:          "42000",
	ErMaxPreparedStmtCount:     "42000",
	ErCantExecuteInReadOnlyTxn: "25006",
	ErMustChangePassword:       "HY000",
	ErStatementTimeout:         "70100",
	CrServerGoneError:          "HY000",
	CrServerLost:               "HY000",
}

// SQLState returns the SQLSTATE the server pairs with code, or "HY000" when
// the code is not in the table.
func (c ErrCode) SQLState() string {
	if s, ok := errSQLStates[c]; ok {
		return s
	}
	return "HY000"
}
