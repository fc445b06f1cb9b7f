package mysqlfake

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
)

// Server error codes the double sends that mysqlwire does not name.
const (
	erMalformedPacket       mysqlwire.ErrCode = 1835
	erUnknownSystemVariable mysqlwire.ErrCode = 1193
)

// prepare serves COM_STMT_PREPARE: the handler for the text, asked with
// Preparing set, gives the statement's columns.
func (c *Conn) prepare(sql string) error {
	numParams, err := countParams(sql)
	if err != nil || numParams > math.MaxUint16 {
		c.respond(syntaxError(Query{SQL: sql}), false)
		return nil
	}
	r := c.answer(Query{SQL: sql, Preparing: true})
	if r.Err != nil || r.Hang || r.Drop != NoDrop || r.Delay > 0 {
		// Failures and faults script the prepare itself.
		if r.Err == nil {
			r.Result, r.OK = nil, nil
		}
		return c.respond(r, false)
	}
	if !c.s.reserveStmt() {
		c.writeERR(mysqlwire.ErMaxPreparedStmtCount, "42000",
			fmt.Sprintf("Can't create more than max_prepared_stmt_count statements (current value: %d)", c.s.cfg.MaxPreparedStmts))
		return nil
	}
	st := &stmt{id: c.nextStmt, sql: normalize(sql), numParams: numParams}
	c.nextStmt++
	if r.Result != nil {
		st.columns = resolveColumns(r.Result)
	}
	c.stmts[st.id] = st
	c.update(func(s *State) {
		if s.Stmts == nil {
			s.Stmts = map[uint32]string{}
		}
		s.Stmts[st.id] = st.sql
	})
	c.out, c.seq = mysqlwire.AppendPrepareOK(c.out, c.seq, mysqlwire.PrepareOK{
		StatementID: st.id, NumColumns: uint16(len(st.columns)), NumParams: uint16(numParams)})
	if numParams > 0 {
		params := make([]Column, numParams)
		for i := range params {
			params[i] = Column{Name: "?", Type: mysqlwire.TypeVarString}
		}
		c.writeColumns(params, false)
	}
	if len(st.columns) > 0 {
		c.writeColumns(st.columns, false)
	}
	return nil
}

// execute serves COM_STMT_EXECUTE.
func (c *Conn) execute(payload []byte) error {
	id, err := mysqlwire.StatementID(payload)
	st := c.stmts[id]
	if err != nil || st == nil {
		c.writeERR(mysqlwire.ErUnknownStmtHandler, "HY000", fmt.Sprintf("Unknown prepared statement handler (%d) given to mysqld_stmt_execute", id))
		return nil
	}
	var params []any
	var flags uint8
	if len(st.longData) == 0 {
		ex, err := mysqlwire.ParseStmtExecute(payload, st.numParams, st.types, c.caps)
		if err != nil || (st.numParams > 0 && ex.Types == nil && st.types == nil) {
			c.writeERR(mysqlwire.ErWrongArguments, "HY000", "Incorrect arguments to mysqld_stmt_execute")
			return nil
		}
		if ex.NewParamsBound {
			st.types = bytes.Clone(ex.Types)
		}
		it := ex.Params(st.types)
		for p, ok := it.Next(); ok; p, ok = it.Next() {
			params = append(params, goValue(p.Value))
		}
		if it.Err() != nil {
			c.writeERR(mysqlwire.ErWrongArguments, "HY000", "Incorrect arguments to mysqld_stmt_execute")
			return nil
		}
		flags = ex.Flags
	} else {
		var types []byte
		params, types, flags, err = parseExecuteLongData(payload, st.numParams, st.types, st.longData)
		if err != nil {
			c.writeERR(mysqlwire.ErWrongArguments, "HY000", "Incorrect arguments to mysqld_stmt_execute")
			return nil
		}
		st.types = types
	}
	st.longData = nil
	st.cursor, st.open = nil, false
	r := c.answer(Query{SQL: st.sql, Executing: true, Params: params})
	if r.Result != nil && flags&mysqlwire.CursorTypeReadOnly != 0 && r.Drop == NoDrop && !r.Hang {
		if r.Delay > 0 {
			if err := c.wait(r.Delay); err != nil {
				return err
			}
		}
		// A cursor: only the metadata now, closed by an EOF carrying
		// SERVER_STATUS_CURSOR_EXISTS (classic EOF even under
		// CLIENT_DEPRECATE_EOF, as mysqlwire's tracker expects); rows come
		// with COM_STMT_FETCH.
		cols := resolveColumns(r.Result)
		c.writePacket(mysqlwire.AppendLenEncInt(c.scratch[:0], uint64(len(cols))))
		c.writeDefinitions(cols)
		st.cursorSet, st.cursor, st.open = r.Result, r.Result.Rows, true
		c.out, c.seq = mysqlwire.AppendEOF(c.out, c.seq, 0, c.status()|mysqlwire.StatusCursorExists)
		return nil
	}
	return c.respond(r, true)
}

// fetch serves COM_STMT_FETCH from an open cursor.
func (c *Conn) fetch(payload []byte) error {
	id, n, err := mysqlwire.ParseStmtFetch(payload)
	st := c.stmts[id]
	if err != nil || st == nil {
		c.writeERR(mysqlwire.ErUnknownStmtHandler, "HY000", fmt.Sprintf("Unknown prepared statement handler (%d) given to mysqld_stmt_fetch", id))
		return nil
	}
	if !st.open {
		c.writeERR(mysqlwire.ErrCode(1421), "HY000", "The statement ("+strconv.Itoa(int(id))+") has no open cursor.")
		return nil
	}
	take := min(int(n), len(st.cursor))
	cols := resolveColumns(st.cursorSet)
	c.writeRows(cols, st.cursor[:take], true)
	st.cursor = st.cursor[take:]
	status := c.status() | mysqlwire.StatusCursorExists
	if len(st.cursor) == 0 {
		status |= mysqlwire.StatusLastRowSent
		st.open = false
	}
	c.out, c.seq = mysqlwire.AppendResultSetEnd(c.out, c.seq, c.caps, 0, status)
	return nil
}

var errBadExecute = errors.New("mysqlfake: malformed COM_STMT_EXECUTE")

// parseExecuteLongData decodes a COM_STMT_EXECUTE whose statement received
// COM_STMT_SEND_LONG_DATA: the parameters given that way have no value in
// the packet, which mysqlwire.ParseStmtExecute does not model (it wants a
// value for every non-NULL parameter), so the values are walked here with
// mysqlwire's value decoder. It returns the parameters, the bound types and
// the flags. CLIENT_QUERY_ATTRIBUTES is not supported (the double does not
// offer it).
func parseExecuteLongData(payload []byte, numParams int, prevTypes []byte, long map[uint16][]byte) ([]any, []byte, uint8, error) {
	const fixed = 1 + 4 + 1 + 4 // command, statement id, flags, iteration count
	if len(payload) < fixed || numParams < 0 {
		return nil, nil, 0, errBadExecute
	}
	flags := payload[5]
	b := payload[fixed:]
	if numParams == 0 {
		return nil, prevTypes, flags, nil
	}
	nb := (numParams + 7) / 8
	if len(b) < nb+1 {
		return nil, nil, 0, errBadExecute
	}
	nulls, bound := b[:nb], b[nb] == 1
	b = b[nb+1:]
	types := prevTypes
	if bound {
		if len(b) < 2*numParams {
			return nil, nil, 0, errBadExecute
		}
		types, b = bytes.Clone(b[:2*numParams]), b[2*numParams:]
	}
	if len(types) != 2*numParams {
		return nil, nil, 0, errBadExecute
	}
	params := make([]any, numParams)
	for i := 0; i < numParams; i++ {
		if data, ok := long[uint16(i)]; ok {
			params[i] = string(data)
			continue
		}
		if nulls[i/8]&(1<<(i%8)) != 0 {
			continue
		}
		v, n, err := mysqlwire.DecodeBinaryValue(b, mysqlwire.FieldType(types[2*i]), types[2*i+1]&0x80 != 0)
		if err != nil {
			return nil, nil, 0, fmt.Errorf("%w: parameter %d: %v", errBadExecute, i, err)
		}
		params[i], b = goValue(v), b[n:]
	}
	return params, types, flags, nil
}

// goValue converts a decoded parameter for handlers.
func goValue(v mysqlwire.Value) any {
	if v.Null || v.Type == mysqlwire.TypeNull {
		return nil
	}
	switch v.Type {
	case mysqlwire.TypeTiny, mysqlwire.TypeShort, mysqlwire.TypeLong, mysqlwire.TypeInt24, mysqlwire.TypeLongLong, mysqlwire.TypeYear:
		if v.Unsigned {
			return v.Uint
		}
		return v.Int
	case mysqlwire.TypeFloat, mysqlwire.TypeDouble:
		return v.Float
	case mysqlwire.TypeDate, mysqlwire.TypeNewDate, mysqlwire.TypeDateTime, mysqlwire.TypeTimestamp,
		mysqlwire.TypeDateTime2, mysqlwire.TypeTimestamp2:
		return v.DateTime
	case mysqlwire.TypeTime, mysqlwire.TypeTime2:
		return v.Duration
	}
	return string(v.Bytes)
}

// resolveColumns fills in inferred column types.
func resolveColumns(rs *ResultSet) []Column {
	cols := make([]Column, len(rs.Columns))
	copy(cols, rs.Columns)
	for i := range cols {
		if cols[i].Type != 0 {
			continue
		}
		cols[i].Type = mysqlwire.TypeVarString
		for _, row := range rs.Rows {
			if i < len(row) && row[i] != nil {
				cols[i].Type, cols[i].Unsigned = inferType(row[i])
				break
			}
		}
	}
	return cols
}

func inferType(v any) (mysqlwire.FieldType, bool) {
	switch v.(type) {
	case int, int8, int16, int32, int64:
		return mysqlwire.TypeLongLong, false
	case uint, uint8, uint16, uint32, uint64:
		return mysqlwire.TypeLongLong, true
	case float32, float64:
		return mysqlwire.TypeDouble, false
	case bool:
		return mysqlwire.TypeTiny, false
	case time.Time:
		return mysqlwire.TypeDateTime, false
	}
	return mysqlwire.TypeVarString, false
}

func isNumeric(t mysqlwire.FieldType) bool {
	switch t {
	case mysqlwire.TypeTiny, mysqlwire.TypeShort, mysqlwire.TypeLong, mysqlwire.TypeInt24, mysqlwire.TypeLongLong,
		mysqlwire.TypeFloat, mysqlwire.TypeDouble, mysqlwire.TypeYear, mysqlwire.TypeNewDecimal:
		return true
	}
	return false
}

// textValue encodes a scripted value for a text row (nil is NULL).
func textValue(v any) []byte {
	switch x := v.(type) {
	case nil:
		return nil
	case []byte:
		if x == nil {
			return []byte{}
		}
		return x
	case string:
		return []byte(x)
	case bool:
		if x {
			return []byte("1")
		}
		return []byte("0")
	case float32:
		return strconv.AppendFloat(nil, float64(x), 'g', -1, 32)
	case float64:
		return strconv.AppendFloat(nil, x, 'g', -1, 64)
	case time.Time:
		return []byte(x.Format("2006-01-02 15:04:05.999999"))
	}
	if i, ok := asInt(v); ok {
		return strconv.AppendInt(nil, i, 10)
	}
	if u, ok := asUint(v); ok {
		return strconv.AppendUint(nil, u, 10)
	}
	return fmt.Append(nil, v)
}

// binaryValue encodes a scripted value in the column's binary type.
func binaryValue(col Column, v any) mysqlwire.Value {
	out := mysqlwire.Value{Type: col.Type, Unsigned: col.Unsigned}
	if v == nil {
		out.Null = true
		return out
	}
	if i, ok := asInt(v); ok {
		out.Int, out.Uint, out.Float = i, uint64(i), float64(i)
	} else if u, ok := asUint(v); ok {
		out.Int, out.Uint, out.Float = int64(u), u, float64(u)
	}
	switch x := v.(type) {
	case bool:
		if x {
			out.Int, out.Uint = 1, 1
		}
	case float32:
		out.Float = float64(x)
	case float64:
		out.Float = x
	case time.Time:
		out.DateTime = mysqlwire.DateTime{Year: uint16(x.Year()), Month: uint8(x.Month()), Day: uint8(x.Day()),
			Hour: uint8(x.Hour()), Minute: uint8(x.Minute()), Second: uint8(x.Second()), Microsecond: uint32(x.Nanosecond() / 1000)}
	}
	if !isNumeric(col.Type) || col.Type == mysqlwire.TypeNewDecimal {
		out.Bytes = textValue(v)
	}
	return out
}

func asInt(v any) (int64, bool) {
	switch x := v.(type) {
	case int:
		return int64(x), true
	case int8:
		return int64(x), true
	case int16:
		return int64(x), true
	case int32:
		return int64(x), true
	case int64:
		return x, true
	}
	return 0, false
}

func asUint(v any) (uint64, bool) {
	switch x := v.(type) {
	case uint:
		return uint64(x), true
	case uint8:
		return uint64(x), true
	case uint16:
		return uint64(x), true
	case uint32:
		return uint64(x), true
	case uint64:
		return x, true
	}
	return 0, false
}
