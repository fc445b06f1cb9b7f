package mysqlwire

import (
	"errors"
	"fmt"
)

// Progress is what ResponseTracker.Feed concludes after a packet.
type Progress uint8

const (
	// NeedMore: the response continues; feed the next server packet.
	NeedMore Progress = iota
	// Complete: the response to the command is over; the connection is
	// ready for the next command.
	Complete
	// ClientTurn: the server now waits for the client. Either a LOCAL
	// INFILE request arrived (LocalInfile reports it: relay the client's
	// file packets and empty terminator, then keep feeding the server's
	// reply), or an authentication step needs the client's answer
	// (AuthSwitch/auth more data: relay the client's reply, then keep
	// feeding).
	ClientTurn
)

func (p Progress) String() string {
	switch p {
	case NeedMore:
		return "NeedMore"
	case Complete:
		return "Complete"
	case ClientTurn:
		return "ClientTurn"
	}
	return "Progress(?)"
}

// PacketKind classifies the packet most recently fed to a ResponseTracker so
// the caller can decode it further (for example ParseOK for session state)
// without classifying it again.
type PacketKind uint8

// Packet kinds.
const (
	KindNone PacketKind = iota
	KindOK
	KindERR
	KindEOF // classic EOF, or the 0xFE-headed OK terminator
	KindColumnCount
	KindColumnDef
	KindParamDef
	KindRow
	KindPrepareOK
	KindLocalInfile
	KindAuthSwitch
	KindAuthMoreData
	KindProgress
	KindContinuation // a follow-up chunk of a packet of 16 MiB or more
	KindStatistics
)

// Tracker errors.
var (
	// ErrUnsupportedCommand: the tracker cannot follow the response
	// (replication and other streaming commands).
	ErrUnsupportedCommand = errors.New("mysqlwire: command response cannot be tracked")
	// ErrUnexpectedPacket: the server sent a packet that is impossible at
	// this point of the response; the connection must be closed.
	ErrUnexpectedPacket = errors.New("mysqlwire: unexpected packet in response")
	// ErrResponseComplete: a packet was fed after the response ended.
	ErrResponseComplete = errors.New("mysqlwire: packet fed after response completed")
)

type trackerState uint8

const (
	stDone trackerState = iota
	stResultStart
	stColumnDefs
	stColumnsEOF
	stRows
	stPrepareOK
	stParamDefs
	stParamsEOF
	stPrepColumnDefs
	stPrepColumnsEOF
	stFieldList
	stSingle
	stStatistics
	stAuth
)

// ResponseTracker follows the server's response to one command without
// decoding rows. Start it with the command sent, feed it every server packet
// payload in order, and stop when Feed returns Complete. It is a plain value
// (reuse it for every command on a connection), holds no references to the
// fed payloads and never allocates.
//
// It handles OK/ERR-only responses, text and binary result sets with and
// without CLIENT_DEPRECATE_EOF, SERVER_MORE_RESULTS_EXISTS chains
// (multi-statements, CALL), COM_STMT_PREPARE responses, cursors opened by
// COM_STMT_EXECUTE and fetched with COM_STMT_FETCH, COM_FIELD_LIST,
// COM_STATISTICS, LOCAL INFILE requests, MariaDB progress reports, packets of
// 16 MiB or more (continuation chunks are passed over), and the auth
// exchange of COM_CHANGE_USER. Replication commands are refused by Start.
type ResponseTracker struct {
	cmd          Command
	caps         Capabilities
	state        trackerState
	deprecateEOF bool
	continuation bool
	lastKind     PacketKind
	remaining    uint64 // column or parameter definitions still to come

	status       StatusFlags
	statusSeen   bool
	stateChanged bool
	localInfile  bool
	authSwitched bool
	failed       bool
	errCode      ErrCode
	sqlState     [5]byte
	affectedRows uint64
	lastInsertID uint64
	warnings     uint16
	resultSets   uint32
	rows         uint64
	stmtID       uint32
	numColumns   uint16
	numParams    uint16
	prepared     bool
}

// Start resets the tracker for the response to cmd. caps are the
// capabilities negotiated on the connection the response arrives on (what
// matters: CLIENT_DEPRECATE_EOF, CLIENT_SESSION_TRACK, CLIENT_PROTOCOL_41,
// MARIADB_CLIENT_PROGRESS). It returns Complete at once for commands the
// server does not answer (COM_QUIT, COM_STMT_CLOSE, COM_STMT_SEND_LONG_DATA),
// NeedMore otherwise, and ErrUnsupportedCommand for commands whose response
// is a stream the tracker cannot follow (binlog dump and the like).
func (t *ResponseTracker) Start(cmd Command, caps Capabilities) (Progress, error) {
	*t = ResponseTracker{cmd: cmd, caps: caps, deprecateEOF: caps&ClientDeprecateEOF != 0}
	switch cmd {
	case ComQuit, ComStmtClose, ComStmtSendLongData:
		t.state = stDone
		return Complete, nil
	case ComQuery, ComStmtExecute, ComProcessInfo:
		t.state = stResultStart
	case ComStmtPrepare:
		t.state = stPrepareOK
	case ComStmtFetch:
		t.state = stRows
	case ComFieldList:
		t.state = stFieldList
	case ComStatistics:
		t.state = stStatistics
	case ComChangeUser:
		t.state = stAuth
	case ComInitDB, ComPing, ComResetConnection, ComSetOption, ComProcessKill, ComRefresh,
		ComShutdown, ComDebug, ComCreateDB, ComDropDB, ComStmtReset,
		ComSleep, ComConnect, ComTime, ComDelayedInsert:
		// The last four are obsolete; servers answer them with ERR 1047.
		t.state = stSingle
	default:
		t.state = stDone
		return Complete, fmt.Errorf("%w: %s", ErrUnsupportedCommand, cmd)
	}
	return NeedMore, nil
}

// StartAuth resets the tracker to follow an authentication exchange after
// the client's handshake response (or to continue one): OK or ERR completes
// it, an auth switch request or auth more data yields ClientTurn, except
// caching_sha2_password's fast-auth-success notice, after which the server
// sends OK without waiting. Command then reports ComChangeUser, the command
// whose response has the same shape.
func (t *ResponseTracker) StartAuth(caps Capabilities) {
	*t = ResponseTracker{cmd: ComChangeUser, caps: caps, deprecateEOF: caps&ClientDeprecateEOF != 0, state: stAuth}
}

// Feed consumes the next server packet payload of the response (without its
// header) and reports whether more packets belong to it. An error means the
// server broke the protocol; the connection should be closed.
func (t *ResponseTracker) Feed(payload []byte) (Progress, error) {
	if t.continuation {
		// The previous packet was exactly MaxPacketPayload long: this one
		// continues it and carries no framing of its own.
		t.continuation = len(payload) == MaxPacketPayload
		t.lastKind = KindContinuation
		return t.progress(), nil
	}
	if t.state == stDone {
		return Complete, ErrResponseComplete
	}
	t.continuation = len(payload) == MaxPacketPayload
	if len(payload) == 0 {
		return t.unexpected(payload)
	}
	first := payload[0]
	if first == HeaderERR && t.state != stStatistics {
		if IsProgressReport(payload) && t.caps&MariaDBClientProgress != 0 {
			t.lastKind = KindProgress
			return NeedMore, nil
		}
		return t.onERR(payload)
	}
	switch t.state {
	case stResultStart:
		return t.onResultStart(payload)
	case stColumnDefs:
		t.lastKind = KindColumnDef
		t.remaining--
		if t.remaining == 0 {
			if t.deprecateEOF {
				t.state = stRows
			} else {
				t.state = stColumnsEOF
			}
		}
		return NeedMore, nil
	case stColumnsEOF:
		if !IsEOF(payload) {
			return t.unexpected(payload)
		}
		if err := t.onTerminator(payload); err != nil {
			return Complete, err
		}
		if t.cmd == ComStmtExecute && t.status&StatusCursorExists != 0 {
			// A cursor was opened: no rows follow, they come with
			// COM_STMT_FETCH.
			return t.complete()
		}
		t.state = stRows
		return NeedMore, nil
	case stRows:
		if !IsResultSetTerminator(payload, t.deprecateEOF) {
			t.lastKind = KindRow
			t.rows++
			return NeedMore, nil
		}
		if err := t.onTerminator(payload); err != nil {
			return Complete, err
		}
		if t.cmd != ComStmtFetch && t.status&StatusMoreResultsExist != 0 {
			t.state = stResultStart
			return NeedMore, nil
		}
		return t.complete()
	case stPrepareOK:
		return t.onPrepareOK(payload)
	case stParamDefs:
		t.lastKind = KindParamDef
		t.remaining--
		if t.remaining == 0 {
			t.state = stParamsEOF
			if t.deprecateEOF {
				return t.afterParams()
			}
		}
		return NeedMore, nil
	case stParamsEOF:
		if !IsEOF(payload) {
			return t.unexpected(payload)
		}
		if err := t.onTerminator(payload); err != nil {
			return Complete, err
		}
		return t.afterParams()
	case stPrepColumnDefs:
		t.lastKind = KindColumnDef
		t.remaining--
		if t.remaining == 0 {
			if t.deprecateEOF {
				return t.complete()
			}
			t.state = stPrepColumnsEOF
		}
		return NeedMore, nil
	case stPrepColumnsEOF:
		if !IsEOF(payload) {
			return t.unexpected(payload)
		}
		if err := t.onTerminator(payload); err != nil {
			return Complete, err
		}
		return t.complete()
	case stFieldList:
		if IsResultSetTerminator(payload, t.deprecateEOF) {
			if err := t.onTerminator(payload); err != nil {
				return Complete, err
			}
			return t.complete()
		}
		t.lastKind = KindColumnDef
		return NeedMore, nil
	case stSingle:
		switch {
		case first == HeaderOK:
			return t.onOK(payload)
		case first == HeaderEOF && len(payload) < MaxPacketPayload:
			if err := t.onTerminator(payload); err != nil {
				return Complete, err
			}
			return t.complete()
		}
		return t.unexpected(payload)
	case stStatistics:
		t.lastKind = KindStatistics
		return t.complete()
	case stAuth:
		switch first {
		case HeaderOK:
			return t.onOK(payload)
		case HeaderEOF:
			t.lastKind = KindAuthSwitch
			t.authSwitched = true
			return ClientTurn, nil
		case HeaderAuthMore:
			t.lastKind = KindAuthMoreData
			if len(payload) == 2 && payload[1] == CachingSHA2FastAuthSuccess {
				return NeedMore, nil
			}
			return ClientTurn, nil
		}
		return t.unexpected(payload)
	}
	return t.unexpected(payload)
}

func (t *ResponseTracker) progress() Progress {
	if t.state == stDone {
		return Complete
	}
	return NeedMore
}

func (t *ResponseTracker) complete() (Progress, error) {
	t.state = stDone
	return Complete, nil
}

func (t *ResponseTracker) unexpected(payload []byte) (Progress, error) {
	t.state = stDone
	t.lastKind = KindNone
	if len(payload) == 0 {
		return Complete, fmt.Errorf("%w: empty packet in response to %s", ErrUnexpectedPacket, t.cmd)
	}
	return Complete, fmt.Errorf("%w: 0x%02x (%d bytes) in response to %s", ErrUnexpectedPacket, payload[0], len(payload), t.cmd)
}

func (t *ResponseTracker) onResultStart(payload []byte) (Progress, error) {
	switch payload[0] {
	case HeaderOK:
		return t.onOK(payload)
	case HeaderLocalInfile:
		if t.cmd != ComQuery {
			return t.unexpected(payload)
		}
		// The caller relays the client's file; the server then answers
		// with OK or ERR, which this state handles.
		t.lastKind = KindLocalInfile
		t.localInfile = true
		return ClientTurn, nil
	}
	count, isNull, n, err := ReadLenEncInt(payload)
	if err != nil || isNull || count == 0 {
		return t.unexpected(payload)
	}
	if t.cmd == ComStmtExecute && t.caps&MariaDBClientCacheMetadata != 0 {
		// MariaDB appends a "metadata follows" byte; when it is 0 the
		// client reuses the column definitions it cached at prepare time.
		if n >= len(payload) {
			return t.unexpected(payload)
		}
		if payload[n] == 0 {
			t.lastKind = KindColumnCount
			t.resultSets++
			if t.deprecateEOF {
				t.state = stRows
			} else {
				t.state = stColumnsEOF
			}
			return NeedMore, nil
		}
	}
	t.lastKind = KindColumnCount
	t.resultSets++
	t.remaining = count
	t.state = stColumnDefs
	return NeedMore, nil
}

func (t *ResponseTracker) onOK(payload []byte) (Progress, error) {
	ok, err := ParseOK(payload, t.caps)
	if err != nil {
		t.state = stDone
		return Complete, fmt.Errorf("response to %s: %w", t.cmd, err)
	}
	t.lastKind = KindOK
	t.recordOK(ok)
	if t.state == stResultStart && ok.Status&StatusMoreResultsExist != 0 {
		return NeedMore, nil
	}
	return t.complete()
}

func (t *ResponseTracker) recordOK(ok OK) {
	t.status = ok.Status
	t.statusSeen = true
	t.affectedRows = ok.AffectedRows
	t.lastInsertID = ok.LastInsertID
	t.warnings = ok.Warnings
	if ok.Status&StatusSessionStateChanged != 0 {
		t.stateChanged = true
	}
}

// onTerminator records the status of an EOF packet or a 0xFE-headed OK.
func (t *ResponseTracker) onTerminator(payload []byte) error {
	t.lastKind = KindEOF
	if len(payload) < 7 {
		e, err := ParseEOF(payload)
		if err != nil {
			t.state = stDone
			return fmt.Errorf("response to %s: %w", t.cmd, err)
		}
		if len(payload) >= 5 {
			t.status = e.Status
			t.statusSeen = true
		}
		t.warnings = e.Warnings
		return nil
	}
	ok, err := ParseOK(payload, t.caps)
	if err != nil {
		t.state = stDone
		return fmt.Errorf("response to %s: %w", t.cmd, err)
	}
	t.recordOK(ok)
	return nil
}

func (t *ResponseTracker) onERR(payload []byte) (Progress, error) {
	t.lastKind = KindERR
	t.failed = true
	t.state = stDone
	if len(payload) >= 3 {
		t.errCode = ErrCode(uint16(payload[1]) | uint16(payload[2])<<8)
	}
	if len(payload) >= 9 && payload[3] == '#' {
		copy(t.sqlState[:], payload[4:9])
	}
	// Statuses reported before the error stay as they were: the server
	// does not send new flags with an ERR, and MORE_RESULTS no longer holds.
	t.status &^= StatusMoreResultsExist
	return Complete, nil
}

func (t *ResponseTracker) onPrepareOK(payload []byte) (Progress, error) {
	if payload[0] != HeaderOK || len(payload) < 9 {
		return t.unexpected(payload)
	}
	r := reader{b: payload, off: 1}
	t.stmtID = r.u32()
	t.numColumns = r.u16()
	t.numParams = r.u16()
	if r.remaining() >= 3 {
		r.u8() // reserved
		t.warnings = r.u16()
	}
	t.prepared = true
	t.lastKind = KindPrepareOK
	if t.numParams > 0 {
		t.remaining = uint64(t.numParams)
		t.state = stParamDefs
		return NeedMore, nil
	}
	return t.afterParams()
}

func (t *ResponseTracker) afterParams() (Progress, error) {
	if t.numColumns == 0 {
		return t.complete()
	}
	t.remaining = uint64(t.numColumns)
	t.state = stPrepColumnDefs
	return NeedMore, nil
}

// Command returns the command the tracker was started with.
func (t *ResponseTracker) Command() Command { return t.cmd }

// Done reports whether the response is complete.
func (t *ResponseTracker) Done() bool { return t.state == stDone }

// LastKind classifies the packet most recently fed.
func (t *ResponseTracker) LastKind() PacketKind { return t.lastKind }

// Status returns the status flags of the last OK or EOF packet seen, and
// whether one was seen at all (an ERR-only response carries no flags).
// After an ERR the flags are those seen before it, which can be stale: an
// error such as a deadlock (1213) rolls the transaction back without
// saying so. A caller that pins on IN_TRANS should treat a failed response
// as "state unknown until the next OK" (or ask with a cheap statement).
func (t *ResponseTracker) Status() (StatusFlags, bool) { return t.status, t.statusSeen }

// InTransaction reports SERVER_STATUS_IN_TRANS from the last status seen.
func (t *ResponseTracker) InTransaction() bool { return t.status&StatusInTrans != 0 }

// CursorOpen reports SERVER_STATUS_CURSOR_EXISTS from the last status seen:
// a COM_STMT_EXECUTE opened a cursor, or a COM_STMT_FETCH left rows behind.
func (t *ResponseTracker) CursorOpen() bool {
	return t.status&StatusCursorExists != 0 && t.status&StatusLastRowSent == 0
}

// Err returns the error code and SQLSTATE when the response ended in ERR.
func (t *ResponseTracker) Err() (code ErrCode, sqlState [5]byte, failed bool) {
	return t.errCode, t.sqlState, t.failed
}

// AffectedRows returns the affected-row count of the last OK packet.
func (t *ResponseTracker) AffectedRows() uint64 { return t.affectedRows }

// LastInsertID returns the last insert id of the last OK packet.
func (t *ResponseTracker) LastInsertID() uint64 { return t.lastInsertID }

// Warnings returns the warning count of the last OK/EOF packet.
func (t *ResponseTracker) Warnings() uint16 { return t.warnings }

// SessionStateChanged reports whether any OK packet of the response carried
// SERVER_SESSION_STATE_CHANGED (a tracked variable, schema, user variable,
// temporary table or prepared statement changed).
func (t *ResponseTracker) SessionStateChanged() bool { return t.stateChanged }

// LocalInfile reports whether the server sent a LOCAL INFILE request.
func (t *ResponseTracker) LocalInfile() bool { return t.localInfile }

// AuthSwitched reports whether an auth switch request arrived (COM_CHANGE_USER
// or StartAuth).
func (t *ResponseTracker) AuthSwitched() bool { return t.authSwitched }

// ResultSets returns how many result sets (column count packets) were seen.
func (t *ResponseTracker) ResultSets() uint32 { return t.resultSets }

// Rows returns how many rows were seen across all result sets.
func (t *ResponseTracker) Rows() uint64 { return t.rows }

// Prepared returns what a successful COM_STMT_PREPARE response announced.
func (t *ResponseTracker) Prepared() (stmtID uint32, numColumns, numParams uint16, ok bool) {
	return t.stmtID, t.numColumns, t.numParams, t.prepared && !t.failed
}
