package mysqlwire

import "fmt"

// First payload bytes of generic response packets.
const (
	HeaderOK          = 0x00
	HeaderEOF         = 0xFE // also OK-as-terminator, auth switch request
	HeaderERR         = 0xFF
	HeaderLocalInfile = 0xFB
	HeaderAuthMore    = 0x01
)

// eofMaxPayload: a real EOF packet is 5 bytes; anything starting with 0xFE
// that is 9 bytes or longer is a row whose first column has an 8-byte
// length prefix.
const eofMaxPayload = 9

// progressErrCode marks a MariaDB progress report, sent as an ERR packet while
// a long statement runs when the client asked for MARIADB_CLIENT_PROGRESS.
const progressErrCode = 0xFFFF

// IsERR reports whether payload is an ERR packet.
func IsERR(payload []byte) bool { return len(payload) > 0 && payload[0] == HeaderERR }

// IsOK reports whether payload is an OK packet with the 0x00 header. Note
// that a binary result row also starts with 0x00; context decides.
//
// Kept although the proxy does not call it: tests decode with it what the proxy relays undecoded.
func IsOK(payload []byte) bool { return len(payload) >= 7 && payload[0] == HeaderOK }

// IsEOF reports whether payload is a classic EOF packet (0xFE, shorter than
// 9 bytes), as opposed to a text row that happens to start with 0xFE.
func IsEOF(payload []byte) bool {
	return len(payload) > 0 && len(payload) < eofMaxPayload && payload[0] == HeaderEOF
}

// IsResultSetTerminator reports whether payload ends the rows of a result
// set. With CLIENT_DEPRECATE_EOF the terminator is an OK packet with a 0xFE
// header, which can be longer than an EOF (it carries info and session
// state) but is always shorter than MaxPacketPayload, while a row starting
// with 0xFE (an 8-byte length prefix) is at least that long.
func IsResultSetTerminator(payload []byte, deprecateEOF bool) bool {
	if len(payload) == 0 || payload[0] != HeaderEOF {
		return false
	}
	if deprecateEOF {
		return len(payload) < MaxPacketPayload
	}
	return len(payload) < eofMaxPayload
}

// OK is a decoded OK packet (or the 0xFE-headed OK that terminates a result
// set under CLIENT_DEPRECATE_EOF). Byte slices alias the parsed payload.
type OK struct {
	Header       byte // HeaderOK or HeaderEOF
	AffectedRows uint64
	LastInsertID uint64
	Status       StatusFlags
	Warnings     uint16
	Info         []byte
	// SessionState holds the raw session state change entries (without
	// their overall length prefix) when StatusSessionStateChanged is set
	// and CLIENT_SESSION_TRACK is in use. Walk it with SessionStateIter.
	SessionState []byte
}

// ParseOK decodes an OK packet. caps are the capabilities in effect for the
// connection (they decide the layout of the tail).
func ParseOK(payload []byte, caps Capabilities) (OK, error) {
	var ok OK
	r := reader{b: payload}
	ok.Header = r.u8()
	if r.err == nil && ok.Header != HeaderOK && ok.Header != HeaderEOF {
		return OK{}, fmt.Errorf("%w: OK packet header 0x%02x", ErrMalformed, ok.Header)
	}
	ok.AffectedRows = r.lenEncInt()
	ok.LastInsertID = r.lenEncInt()
	switch {
	case caps&ClientProtocol41 != 0:
		ok.Status = StatusFlags(r.u16())
		ok.Warnings = r.u16()
	case caps&ClientTransactions != 0:
		ok.Status = StatusFlags(r.u16())
	}
	if r.err != nil {
		return OK{}, fmt.Errorf("parse OK packet: %w", r.err)
	}
	if caps&ClientSessionTrack != 0 {
		// Servers omit the info string entirely when it is empty and no
		// state follows, so an exhausted payload is fine here.
		if r.remaining() > 0 {
			ok.Info = r.lenEncString()
			if ok.Status&StatusSessionStateChanged != 0 && r.remaining() > 0 {
				ok.SessionState = r.lenEncString()
			}
		}
	} else {
		ok.Info = r.rest()
	}
	if r.err != nil {
		return OK{}, fmt.Errorf("parse OK packet info: %w", r.err)
	}
	return ok, nil
}

// AppendOK appends ok framed as a packet with sequence id seq and returns the
// next sequence id. caps select the layout exactly as ParseOK reads it;
// SessionState is written only with CLIENT_SESSION_TRACK and
// StatusSessionStateChanged.
func AppendOK(dst []byte, seq uint8, caps Capabilities, ok OK) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = AppendOKPayload(dst, caps, ok)
	return FinishPacket(dst, at, seq)
}

// AppendOKPayload appends the payload of ok without a packet header.
func AppendOKPayload(dst []byte, caps Capabilities, ok OK) []byte {
	h := ok.Header
	if h != HeaderEOF {
		h = HeaderOK
	}
	dst = append(dst, h)
	dst = AppendLenEncInt(dst, ok.AffectedRows)
	dst = AppendLenEncInt(dst, ok.LastInsertID)
	switch {
	case caps&ClientProtocol41 != 0:
		dst = appendUint16(dst, uint16(ok.Status))
		dst = appendUint16(dst, ok.Warnings)
	case caps&ClientTransactions != 0:
		dst = appendUint16(dst, uint16(ok.Status))
	}
	if caps&ClientSessionTrack != 0 {
		withState := ok.Status&StatusSessionStateChanged != 0 && len(ok.SessionState) > 0
		if len(ok.Info) > 0 || withState {
			dst = AppendLenEncString(dst, ok.Info)
		}
		if withState {
			dst = AppendLenEncString(dst, ok.SessionState)
		}
	} else {
		dst = append(dst, ok.Info...)
	}
	return dst
}

// EOF is a decoded classic EOF packet.
type EOF struct {
	Warnings uint16
	Status   StatusFlags
}

// ParseEOF decodes an EOF packet. Pre-4.1 EOF packets are a lone 0xFE byte.
func ParseEOF(payload []byte) (EOF, error) {
	if !IsEOF(payload) {
		return EOF{}, fmt.Errorf("%w: not an EOF packet", ErrMalformed)
	}
	if len(payload) < 5 {
		return EOF{}, nil
	}
	r := reader{b: payload, off: 1}
	e := EOF{Warnings: r.u16(), Status: StatusFlags(r.u16())}
	return e, nil
}

// AppendEOF appends an EOF packet and returns the next sequence id.
func AppendEOF(dst []byte, seq uint8, warnings uint16, status StatusFlags) ([]byte, uint8) {
	dst = append(dst, 5, 0, 0, seq, HeaderEOF)
	dst = appendUint16(dst, warnings)
	dst = appendUint16(dst, uint16(status))
	return dst, seq + 1
}

// AppendResultSetEnd appends what terminates the rows of a result set in the
// mode the client uses: an EOF packet, or under CLIENT_DEPRECATE_EOF an OK
// packet with a 0xFE header. Use it when converting between the two modes.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func AppendResultSetEnd(dst []byte, seq uint8, caps Capabilities, warnings uint16, status StatusFlags) ([]byte, uint8) {
	if caps&ClientDeprecateEOF != 0 {
		return AppendOK(dst, seq, caps, OK{Header: HeaderEOF, Status: status, Warnings: warnings})
	}
	return AppendEOF(dst, seq, warnings, status)
}

// ERR is a decoded ERR packet. Slices alias the parsed payload.
type ERR struct {
	Code ErrCode
	// SQLState is the 5-character state, or nil when the packet had no
	// '#' marker (pre-4.1 clients, or errors sent before the handshake).
	SQLState []byte
	Message  []byte
}

// Error makes ERR usable as an error value (this allocates; not for the hot
// path).
func (e ERR) Error() string {
	if e.SQLState == nil {
		return fmt.Sprintf("ERROR %d: %s", e.Code, e.Message)
	}
	return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.SQLState, e.Message)
}

// ParseERR decodes an ERR packet. The SQLSTATE marker is optional: servers
// omit it in errors sent before the client's capabilities are known.
func ParseERR(payload []byte) (ERR, error) {
	r := reader{b: payload}
	if h := r.u8(); r.err == nil && h != HeaderERR {
		return ERR{}, fmt.Errorf("%w: ERR packet header 0x%02x", ErrMalformed, h)
	}
	e := ERR{Code: ErrCode(r.u16())}
	if r.err != nil {
		return ERR{}, fmt.Errorf("parse ERR packet: %w", r.err)
	}
	if r.remaining() >= 6 && r.b[r.off] == '#' {
		r.off++
		e.SQLState = r.bytes(5)
	}
	e.Message = r.rest()
	return e, nil
}

// IsProgressReport reports whether payload is a MariaDB progress report
// (an ERR packet with code 0xFFFF), which is informational and does not end
// the response.
func IsProgressReport(payload []byte) bool {
	return len(payload) >= 3 && payload[0] == HeaderERR && uint16(payload[1])|uint16(payload[2])<<8 == progressErrCode
}

// AppendERR appends an ERR packet with a SQLSTATE marker and returns the next
// sequence id. An empty sqlState means the state the code maps to (see
// ErrCode.SQLState); a sqlState that is not 5 bytes is replaced by HY000.
func AppendERR(dst []byte, seq uint8, code ErrCode, sqlState, msg string) ([]byte, uint8) {
	if sqlState == "" {
		sqlState = code.SQLState()
	}
	if len(sqlState) != 5 {
		sqlState = "HY000"
	}
	dst, at := AppendHeader(dst)
	dst = append(dst, HeaderERR)
	dst = appendUint16(dst, uint16(code))
	dst = append(dst, '#')
	dst = append(dst, sqlState...)
	dst = append(dst, msg...)
	return FinishPacket(dst, at, seq)
}

// Session state change types (the first byte of each entry).
const (
	SessionTrackSystemVariables            = 0x00
	SessionTrackSchema                     = 0x01
	SessionTrackStateChange                = 0x02
	SessionTrackGTIDs                      = 0x03
	SessionTrackTransactionCharacteristics = 0x04
	SessionTrackTransactionState           = 0x05
)

// SessionStateEntry is one session state change; Data aliases the OK packet.
type SessionStateEntry struct {
	Type uint8
	Data []byte
}

// SystemVariable decodes a SESSION_TRACK_SYSTEM_VARIABLES entry.
func (e SessionStateEntry) SystemVariable() (name, value []byte, err error) {
	if e.Type != SessionTrackSystemVariables {
		return nil, nil, fmt.Errorf("%w: entry type %d is not a system variable", ErrMalformed, e.Type)
	}
	r := reader{b: e.Data}
	name = r.lenEncString()
	value = r.lenEncString()
	if r.err != nil {
		return nil, nil, fmt.Errorf("parse system variable entry: %w", r.err)
	}
	return name, value, nil
}

// Value returns the value of a SCHEMA, STATE_CHANGE,
// TRANSACTION_CHARACTERISTICS or TRANSACTION_STATE entry: the schema name,
// "1"/"0", the SQL text that recreates the transaction's characteristics,
// or the 8-character transaction state. STATE_CHANGE data is the flag
// itself; the others wrap their value in one more length prefix.
func (e SessionStateEntry) Value() ([]byte, error) {
	if e.Type == SessionTrackStateChange {
		return e.Data, nil
	}
	r := reader{b: e.Data}
	v := r.lenEncString()
	if r.err != nil {
		return nil, fmt.Errorf("parse session state entry %d: %w", e.Type, r.err)
	}
	return v, nil
}

// SessionStateIter walks the entries of OK.SessionState without allocating.
type SessionStateIter struct {
	r reader
}

// NewSessionStateIter returns an iterator over raw session state entries.
//
// Kept although the proxy does not call it: tests decode with it what the proxy relays undecoded.
func NewSessionStateIter(state []byte) SessionStateIter {
	return SessionStateIter{r: reader{b: state}}
}

// Next returns the next entry; ok is false at the end or after an error
// (check Err).
func (it *SessionStateIter) Next() (e SessionStateEntry, ok bool) {
	if it.r.err != nil || it.r.remaining() == 0 {
		return SessionStateEntry{}, false
	}
	e.Type = it.r.u8()
	e.Data = it.r.lenEncString()
	if it.r.err != nil {
		return SessionStateEntry{}, false
	}
	return e, true
}

// Err returns the decoding error that stopped the iteration, if any.
func (it *SessionStateIter) Err() error { return it.r.err }

// AppendSessionStateEntry appends one entry (type byte and length-encoded
// data) to a session state block being built for AppendOK.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func AppendSessionStateEntry(dst []byte, typ uint8, data []byte) []byte {
	return AppendLenEncString(append(dst, typ), data)
}
