package mysqlwire

import (
	"encoding/binary"
	"fmt"
)

// COM_STMT_EXECUTE flags (cursor type and MySQL 8's parameter count flag).
const (
	CursorTypeNoCursor             = 0x00
	CursorTypeReadOnly             = 0x01
	CursorTypeForUpdate            = 0x02
	CursorTypeScrollable           = 0x04
	ExecuteParameterCountAvailable = 0x08
)

// COM_SET_OPTION values.
const (
	OptionMultiStatementsOn  uint16 = 0
	OptionMultiStatementsOff uint16 = 1
)

// paramUnsignedFlag marks an unsigned parameter in the type's second byte.
const paramUnsignedFlag = 0x80

// statementIDOffset is where the statement id sits in the payloads of the
// commands that carry one: right after the command byte.
const statementIDOffset = 1

// StatementID returns the statement id of a COM_STMT_EXECUTE, _CLOSE,
// _RESET, _FETCH, _SEND_LONG_DATA or MariaDB _BULK_EXECUTE payload.
func StatementID(payload []byte) (uint32, error) {
	if len(payload) < statementIDOffset+4 {
		return 0, ErrTruncated
	}
	if !Command(payload[0]).HasStatementID() {
		return 0, fmt.Errorf("%w: %s carries no statement id", ErrMalformed, Command(payload[0]))
	}
	return binary.LittleEndian.Uint32(payload[statementIDOffset:]), nil
}

// RewriteStatementID overwrites the statement id of a payload accepted by
// StatementID in place and returns the id it replaced. A proxy uses it to map
// the client's statement id to the backend's without copying the payload.
func RewriteStatementID(payload []byte, id uint32) (old uint32, err error) {
	old, err = StatementID(payload)
	if err != nil {
		return 0, err
	}
	binary.LittleEndian.PutUint32(payload[statementIDOffset:], id)
	return old, nil
}

// PrepareOK is the first packet of a successful COM_STMT_PREPARE response.
type PrepareOK struct {
	StatementID uint32
	NumColumns  uint16
	NumParams   uint16
	Warnings    uint16
}

// ParsePrepareOK decodes a COM_STMT_PREPARE_OK packet. The 3 trailing bytes
// (filler and warning count) are optional, as in old servers.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func ParsePrepareOK(payload []byte) (PrepareOK, error) {
	r := reader{b: payload}
	if h := r.u8(); r.err == nil && h != HeaderOK {
		return PrepareOK{}, fmt.Errorf("%w: prepare OK header 0x%02x", ErrMalformed, h)
	}
	p := PrepareOK{StatementID: r.u32(), NumColumns: r.u16(), NumParams: r.u16()}
	if r.err != nil {
		return PrepareOK{}, fmt.Errorf("parse prepare OK: %w", r.err)
	}
	if r.remaining() >= 3 {
		r.u8()
		p.Warnings = r.u16()
	}
	return p, nil
}

// AppendPrepareOK appends a COM_STMT_PREPARE_OK packet. The caller follows it
// with NumParams parameter definitions and NumColumns column definitions,
// each block closed by an EOF unless the client uses CLIENT_DEPRECATE_EOF.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func AppendPrepareOK(dst []byte, seq uint8, p PrepareOK) ([]byte, uint8) {
	dst = append(dst, 12, 0, 0, seq, HeaderOK)
	dst = appendUint32(dst, p.StatementID)
	dst = appendUint16(dst, p.NumColumns)
	dst = appendUint16(dst, p.NumParams)
	dst = append(dst, 0)
	dst = appendUint16(dst, p.Warnings)
	return dst, seq + 1
}

// StmtExecute is a decoded COM_STMT_EXECUTE request. Slices alias the
// payload.
type StmtExecute struct {
	StatementID    uint32
	Flags          uint8 // cursor type, see CursorType*
	IterationCount uint32
	ParamCount     int
	NullBitmap     []byte
	NewParamsBound bool
	// Types holds the bound types, 2 bytes per parameter (type, then 0x80
	// for unsigned), or with CLIENT_QUERY_ATTRIBUTES each pair followed by
	// a length-encoded parameter name. Nil when NewParamsBound is false.
	Types []byte
	// Values holds the binary parameter values of the non-NULL parameters.
	Values []byte
	caps   Capabilities
}

// ParseStmtExecute decodes a COM_STMT_EXECUTE payload. numParams is the
// parameter count announced by the statement's prepare response (a
// COM_STMT_EXECUTE does not carry it, except with CLIENT_QUERY_ATTRIBUTES).
// prevTypes are the types bound by an earlier execution of the statement,
// used when this one does not rebind (NewParamsBound false); with neither,
// the values cannot be delimited and Values is the rest of the payload. When
// types are known every value is checked to lie within the payload.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func ParseStmtExecute(payload []byte, numParams int, prevTypes []byte, caps Capabilities) (StmtExecute, error) {
	var e StmtExecute
	e.caps = caps
	r := reader{b: payload}
	if c := r.u8(); r.err == nil && Command(c) != ComStmtExecute {
		return StmtExecute{}, fmt.Errorf("%w: not COM_STMT_EXECUTE (0x%02x)", ErrMalformed, c)
	}
	e.StatementID = r.u32()
	e.Flags = r.u8()
	e.IterationCount = r.u32()
	if r.err != nil {
		return StmtExecute{}, fmt.Errorf("parse COM_STMT_EXECUTE: %w", r.err)
	}
	if numParams < 0 {
		return StmtExecute{}, fmt.Errorf("%w: negative parameter count", ErrMalformed)
	}
	e.ParamCount = numParams
	queryAttrs := caps&ClientQueryAttributes != 0
	if numParams > 0 || (queryAttrs && e.Flags&ExecuteParameterCountAvailable != 0) {
		if queryAttrs {
			n := r.lenEncInt()
			if r.err == nil && n > uint64(r.remaining()) {
				// Every parameter needs at least a type pair.
				return StmtExecute{}, fmt.Errorf("parse COM_STMT_EXECUTE: parameter count %d: %w", n, ErrTruncated)
			}
			e.ParamCount = int(n)
		}
	}
	if r.err != nil {
		return StmtExecute{}, fmt.Errorf("parse COM_STMT_EXECUTE: %w", r.err)
	}
	if e.ParamCount == 0 {
		return e, nil
	}
	if e.ParamCount > r.remaining()*8 {
		return StmtExecute{}, fmt.Errorf("parse COM_STMT_EXECUTE: null bitmap for %d parameters: %w", e.ParamCount, ErrTruncated)
	}
	e.NullBitmap = r.bytes((e.ParamCount + 7) / 8)
	e.NewParamsBound = r.u8() == 1
	if r.err != nil {
		return StmtExecute{}, fmt.Errorf("parse COM_STMT_EXECUTE: %w", r.err)
	}
	types := prevTypes
	if e.NewParamsBound {
		start := r.off
		for i := 0; i < e.ParamCount && r.err == nil; i++ {
			r.u16()
			if queryAttrs {
				r.lenEncString()
			}
		}
		if r.err != nil {
			return StmtExecute{}, fmt.Errorf("parse COM_STMT_EXECUTE parameter types: %w", r.err)
		}
		e.Types = r.b[start:r.off:r.off]
		types = e.Types
	}
	e.Values = r.rest()
	if types != nil {
		it := e.params(types)
		for {
			if _, ok := it.Next(); !ok {
				break
			}
		}
		if it.Err() != nil {
			return StmtExecute{}, fmt.Errorf("parse COM_STMT_EXECUTE values: %w", it.Err())
		}
	}
	return e, nil
}

// Params iterates over the parameters. Pass nil to use the types bound by
// this request; pass the Types of an earlier request of the same statement
// when NewParamsBound is false.
func (e *StmtExecute) Params(prevTypes []byte) ParamIter {
	types := e.Types
	if types == nil {
		types = prevTypes
	}
	return e.params(types)
}

func (e *StmtExecute) params(types []byte) ParamIter {
	return ParamIter{
		types:      reader{b: types},
		values:     reader{b: e.Values},
		nullBitmap: e.NullBitmap,
		count:      e.ParamCount,
		named:      e.caps&ClientQueryAttributes != 0,
	}
}

// Param is one decoded COM_STMT_EXECUTE parameter.
type Param struct {
	Name  []byte // only with CLIENT_QUERY_ATTRIBUTES
	Value Value
}

// ParamIter walks the parameters of a COM_STMT_EXECUTE without allocating.
type ParamIter struct {
	types, values reader
	nullBitmap    []byte
	count, index  int
	named         bool
	err           error
}

// Next returns the next parameter; ok is false at the end or on error.
func (it *ParamIter) Next() (p Param, ok bool) {
	if it.err != nil || it.index >= it.count {
		return Param{}, false
	}
	typ := FieldType(it.types.u8())
	unsigned := it.types.u8()&paramUnsignedFlag != 0
	if it.named {
		p.Name = it.types.lenEncString()
	}
	if it.types.err != nil {
		it.err = fmt.Errorf("parameter %d type: %w", it.index, it.types.err)
		return Param{}, false
	}
	i := it.index
	it.index++
	if isNullBit(it.nullBitmap, i, 0) {
		p.Value = Value{Type: typ, Unsigned: unsigned, Null: true}
		return p, true
	}
	v, n, err := DecodeBinaryValue(it.values.b[it.values.off:], typ, unsigned)
	if err != nil {
		it.err = fmt.Errorf("parameter %d: %w", i, err)
		return Param{}, false
	}
	it.values.off += n
	p.Value = v
	return p, true
}

// Err returns the error that stopped iteration, if any.
func (it *ParamIter) Err() error { return it.err }

// AppendStmtExecute appends a COM_STMT_EXECUTE request binding params (their
// types are always sent) and returns the next sequence id. It is meant for a
// client that uses neither CLIENT_QUERY_ATTRIBUTES nor MariaDB bulk mode.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func AppendStmtExecute(dst []byte, seq uint8, stmtID uint32, flags uint8, params []Value) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = append(dst, byte(ComStmtExecute))
	dst = appendUint32(dst, stmtID)
	dst = append(dst, flags)
	dst = appendUint32(dst, 1)
	if len(params) > 0 {
		bitmapAt := len(dst)
		for range (len(params) + 7) / 8 {
			dst = append(dst, 0)
		}
		for i, p := range params {
			if p.Null {
				dst[bitmapAt+i/8] |= 1 << (i % 8)
			}
		}
		dst = append(dst, 1)
		for _, p := range params {
			var fl byte
			if p.Unsigned {
				fl = paramUnsignedFlag
			}
			dst = append(dst, byte(p.Type), fl)
		}
		for _, p := range params {
			if !p.Null {
				dst = AppendBinaryValue(dst, p)
			}
		}
	}
	return FinishPacket(dst, at, seq)
}

// StmtSendLongData is a decoded COM_STMT_SEND_LONG_DATA request.
type StmtSendLongData struct {
	StatementID uint32
	ParamID     uint16
	Data        []byte
}

// ParseStmtSendLongData decodes a COM_STMT_SEND_LONG_DATA payload.
func ParseStmtSendLongData(payload []byte) (StmtSendLongData, error) {
	r := reader{b: payload}
	if c := r.u8(); r.err == nil && Command(c) != ComStmtSendLongData {
		return StmtSendLongData{}, fmt.Errorf("%w: not COM_STMT_SEND_LONG_DATA (0x%02x)", ErrMalformed, c)
	}
	d := StmtSendLongData{StatementID: r.u32(), ParamID: r.u16()}
	d.Data = r.rest()
	if r.err != nil {
		return StmtSendLongData{}, fmt.Errorf("parse COM_STMT_SEND_LONG_DATA: %w", r.err)
	}
	return d, nil
}

// AppendStmtSendLongData appends a COM_STMT_SEND_LONG_DATA request.
func AppendStmtSendLongData(dst []byte, seq uint8, stmtID uint32, paramID uint16, data []byte) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = append(dst, byte(ComStmtSendLongData))
	dst = appendUint32(dst, stmtID)
	dst = appendUint16(dst, paramID)
	dst = append(dst, data...)
	return FinishPacket(dst, at, seq)
}

// ParseStmtClose decodes COM_STMT_CLOSE and returns the statement id.
func ParseStmtClose(payload []byte) (uint32, error) { return parseStmtIDOnly(payload, ComStmtClose) }

// ParseStmtReset decodes COM_STMT_RESET and returns the statement id.
func ParseStmtReset(payload []byte) (uint32, error) { return parseStmtIDOnly(payload, ComStmtReset) }

func parseStmtIDOnly(payload []byte, cmd Command) (uint32, error) {
	if len(payload) != 5 || Command(payload[0]) != cmd {
		return 0, fmt.Errorf("%w: %s payload must be 5 bytes", ErrMalformed, cmd)
	}
	return binary.LittleEndian.Uint32(payload[1:]), nil
}

// ParseStmtFetch decodes COM_STMT_FETCH.
func ParseStmtFetch(payload []byte) (stmtID, numRows uint32, err error) {
	if len(payload) != 9 || Command(payload[0]) != ComStmtFetch {
		return 0, 0, fmt.Errorf("%w: COM_STMT_FETCH payload must be 9 bytes", ErrMalformed)
	}
	return binary.LittleEndian.Uint32(payload[1:]), binary.LittleEndian.Uint32(payload[5:]), nil
}

// AppendStmtClose appends COM_STMT_CLOSE (which gets no response).
func AppendStmtClose(dst []byte, seq uint8, stmtID uint32) ([]byte, uint8) {
	return appendStmtIDCommand(dst, seq, ComStmtClose, stmtID)
}

// AppendStmtReset appends COM_STMT_RESET.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func AppendStmtReset(dst []byte, seq uint8, stmtID uint32) ([]byte, uint8) {
	return appendStmtIDCommand(dst, seq, ComStmtReset, stmtID)
}

func appendStmtIDCommand(dst []byte, seq uint8, cmd Command, stmtID uint32) ([]byte, uint8) {
	dst = append(dst, 5, 0, 0, seq, byte(cmd))
	return appendUint32(dst, stmtID), seq + 1
}

// AppendStmtFetch appends COM_STMT_FETCH.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func AppendStmtFetch(dst []byte, seq uint8, stmtID, numRows uint32) ([]byte, uint8) {
	dst = append(dst, 9, 0, 0, seq, byte(ComStmtFetch))
	dst = appendUint32(dst, stmtID)
	return appendUint32(dst, numRows), seq + 1
}

// AppendCommand appends a request made of a command byte and an argument:
// COM_QUERY and COM_STMT_PREPARE (SQL text), COM_INIT_DB (schema),
// COM_FIELD_LIST (table NUL wildcard), and argument-less ones such as
// COM_PING, COM_QUIT, COM_RESET_CONNECTION, COM_STATISTICS. Requests start a
// new exchange, so their sequence id is normally 0.
func AppendCommand(dst []byte, seq uint8, cmd Command, arg []byte) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = append(append(dst, byte(cmd)), arg...)
	return FinishPacket(dst, at, seq)
}

// AppendProcessKill appends COM_PROCESS_KILL for a connection id.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func AppendProcessKill(dst []byte, seq uint8, connID uint32) ([]byte, uint8) {
	dst = append(dst, 5, 0, 0, seq, byte(ComProcessKill))
	return appendUint32(dst, connID), seq + 1
}

// ParseProcessKill decodes COM_PROCESS_KILL and returns the connection id.
func ParseProcessKill(payload []byte) (uint32, error) {
	if len(payload) != 5 || Command(payload[0]) != ComProcessKill {
		return 0, fmt.Errorf("%w: COM_PROCESS_KILL payload must be 5 bytes", ErrMalformed)
	}
	return binary.LittleEndian.Uint32(payload[1:]), nil
}

// ParseSetOption decodes COM_SET_OPTION and returns the option
// (OptionMultiStatementsOn or OptionMultiStatementsOff).
func ParseSetOption(payload []byte) (uint16, error) {
	if len(payload) != 3 || Command(payload[0]) != ComSetOption {
		return 0, fmt.Errorf("%w: COM_SET_OPTION payload must be 3 bytes", ErrMalformed)
	}
	opt := binary.LittleEndian.Uint16(payload[1:])
	if opt > OptionMultiStatementsOff {
		return 0, fmt.Errorf("%w: unknown COM_SET_OPTION value %d", ErrMalformed, opt)
	}
	return opt, nil
}

// AppendSetOption appends COM_SET_OPTION.
func AppendSetOption(dst []byte, seq uint8, option uint16) ([]byte, uint8) {
	dst = append(dst, 3, 0, 0, seq, byte(ComSetOption))
	return appendUint16(dst, option), seq + 1
}

// ChangeUser is a decoded COM_CHANGE_USER request. Slices alias the payload.
type ChangeUser struct {
	Username     []byte
	AuthResponse []byte
	Database     []byte
	CharacterSet uint16
	AuthPlugin   []byte
	Attrs        []byte // raw connect attributes; walk with NewAttrIter
}

// ParseChangeUser decodes COM_CHANGE_USER. caps are the capabilities the
// client negotiated at connect time; they decide the auth response encoding
// and which trailing fields exist.
func ParseChangeUser(payload []byte, caps Capabilities) (ChangeUser, error) {
	r := reader{b: payload}
	if c := r.u8(); r.err == nil && Command(c) != ComChangeUser {
		return ChangeUser{}, fmt.Errorf("%w: not COM_CHANGE_USER (0x%02x)", ErrMalformed, c)
	}
	var cu ChangeUser
	cu.Username = r.nulString()
	if caps&ClientSecureConnection != 0 {
		cu.AuthResponse = r.bytes(int(r.u8()))
	} else {
		cu.AuthResponse = r.nulString()
	}
	if r.remaining() > 0 {
		// Clients end the schema with a NUL; a payload that stops right
		// after it (or after the auth response) is accepted, as servers do.
		cu.Database = r.nulStringOrRest()
	}
	if r.remaining() > 0 {
		cu.CharacterSet = r.u16()
		if caps&ClientPluginAuth != 0 && r.remaining() > 0 {
			cu.AuthPlugin = r.nulStringOrRest()
		}
		if caps&ClientConnectAttrs != 0 && r.remaining() > 0 {
			cu.Attrs = r.lenEncString()
		}
	}
	if r.err != nil {
		return ChangeUser{}, fmt.Errorf("parse COM_CHANGE_USER: %w", r.err)
	}
	return cu, nil
}

// AppendChangeUser appends COM_CHANGE_USER with the layout caps select.
func AppendChangeUser(dst []byte, seq uint8, caps Capabilities, cu ChangeUser) ([]byte, uint8) {
	dst, at := AppendHeader(dst)
	dst = append(dst, byte(ComChangeUser))
	dst = append(append(dst, cu.Username...), 0)
	if caps&ClientSecureConnection != 0 {
		auth := cu.AuthResponse
		if len(auth) > 255 {
			auth = auth[:255]
		}
		dst = append(append(dst, byte(len(auth))), auth...)
	} else {
		dst = append(append(dst, cu.AuthResponse...), 0)
	}
	dst = append(append(dst, cu.Database...), 0)
	dst = appendUint16(dst, cu.CharacterSet)
	if caps&ClientPluginAuth != 0 {
		dst = append(append(dst, cu.AuthPlugin...), 0)
	}
	if caps&ClientConnectAttrs != 0 {
		dst = AppendLenEncString(dst, cu.Attrs)
	}
	return FinishPacket(dst, at, seq)
}

// QueryText returns the SQL text of a COM_QUERY payload without copying.
// With CLIENT_QUERY_ATTRIBUTES (MySQL 8.0.23+) the text follows a block of
// typed, named attributes, which is walked and skipped; a proxy that does
// not want to deal with attributes should not advertise that capability.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func QueryText(payload []byte, caps Capabilities) ([]byte, error) {
	r := reader{b: payload}
	if c := r.u8(); r.err == nil && Command(c) != ComQuery {
		return nil, fmt.Errorf("%w: not COM_QUERY (0x%02x)", ErrMalformed, c)
	}
	if r.err != nil {
		return nil, fmt.Errorf("parse COM_QUERY: %w", r.err)
	}
	if caps&ClientQueryAttributes == 0 {
		return r.rest(), nil
	}
	count := r.lenEncInt()
	r.lenEncInt() // parameter set count, always 1
	if r.err == nil && count > uint64(r.remaining()) {
		return nil, fmt.Errorf("parse COM_QUERY attributes: count %d: %w", count, ErrTruncated)
	}
	if r.err != nil {
		return nil, fmt.Errorf("parse COM_QUERY attributes: %w", r.err)
	}
	if count > 0 {
		n := int(count)
		nullBitmap := r.bytes((n + 7) / 8)
		if r.u8() != 1 {
			// Without bound types the values cannot be delimited.
			return nil, fmt.Errorf("%w: query attributes without types", ErrMalformed)
		}
		typesStart := r.off
		for i := 0; i < n && r.err == nil; i++ {
			r.u16()
			r.lenEncString()
		}
		if r.err != nil {
			return nil, fmt.Errorf("parse COM_QUERY attribute types: %w", r.err)
		}
		it := ParamIter{
			types:      reader{b: r.b[typesStart:r.off]},
			values:     reader{b: r.b[r.off:]},
			nullBitmap: nullBitmap,
			count:      n,
			named:      true,
		}
		for {
			if _, ok := it.Next(); !ok {
				break
			}
		}
		if it.Err() != nil {
			return nil, fmt.Errorf("parse COM_QUERY attribute values: %w", it.Err())
		}
		r.off += it.values.off
	}
	return r.rest(), nil
}
