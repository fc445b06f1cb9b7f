package mysqlwire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// DateTime is a DATE, DATETIME or TIMESTAMP value of the binary protocol.
// Zero dates ("0000-00-00") are representable, unlike with time.Time.
type DateTime struct {
	Year                 uint16
	Month, Day           uint8
	Hour, Minute, Second uint8
	Microsecond          uint32
}

// Duration is a TIME value of the binary protocol: a signed span of days,
// hours, minutes, seconds and microseconds (the type ranges over ±838:59:59).
type Duration struct {
	Negative             bool
	Days                 uint32
	Hour, Minute, Second uint8
	Microsecond          uint32
}

// Value is one binary protocol value. Which field is meaningful depends on
// Type: Int for signed integers and YEAR, Uint for unsigned integers, Float
// for FLOAT and DOUBLE, DateTime for DATE/DATETIME/TIMESTAMP, Duration for
// TIME, and Bytes (aliasing the payload) for DECIMAL/NEWDECIMAL (as decimal
// text) and all string-like types: VARCHAR, strings, blobs, JSON, BIT,
// ENUM, SET, GEOMETRY.
type Value struct {
	Type     FieldType
	Unsigned bool
	Null     bool
	Int      int64
	Uint     uint64
	Float    float64
	DateTime DateTime
	Duration Duration
	Bytes    []byte
}

// fixedBinarySize returns the size of fixed-width binary values, or 0 for
// variable-width ones.
func fixedBinarySize(t FieldType) int {
	switch t {
	case TypeTiny:
		return 1
	case TypeShort, TypeYear:
		return 2
	case TypeLong, TypeInt24, TypeFloat:
		return 4
	case TypeLongLong, TypeDouble:
		return 8
	}
	return 0
}

// DecodeBinaryValue decodes one non-NULL value of type t at the start of b
// and returns it with the number of bytes it occupied.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func DecodeBinaryValue(b []byte, t FieldType, unsigned bool) (Value, int, error) {
	v := Value{Type: t, Unsigned: unsigned}
	if size := fixedBinarySize(t); size > 0 {
		if len(b) < size {
			return Value{}, 0, ErrTruncated
		}
		switch t {
		case TypeTiny:
			v.Uint, v.Int = uint64(b[0]), int64(int8(b[0]))
		case TypeShort, TypeYear:
			u := binary.LittleEndian.Uint16(b)
			v.Uint, v.Int = uint64(u), int64(int16(u))
		case TypeLong, TypeInt24:
			u := binary.LittleEndian.Uint32(b)
			v.Uint, v.Int = uint64(u), int64(int32(u))
		case TypeLongLong:
			u := binary.LittleEndian.Uint64(b)
			v.Uint, v.Int = u, int64(u)
		case TypeFloat:
			v.Float = float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
		case TypeDouble:
			v.Float = math.Float64frombits(binary.LittleEndian.Uint64(b))
		}
		if t == TypeYear {
			v.Unsigned = true
		}
		if v.Unsigned {
			v.Int = int64(v.Uint)
		} else {
			v.Uint = uint64(v.Int)
		}
		return v, size, nil
	}
	switch t {
	case TypeNull:
		v.Null = true
		return v, 0, nil
	case TypeDate, TypeDateTime, TypeTimestamp, TypeNewDate, TypeDateTime2, TypeTimestamp2:
		n, err := decodeDateTime(b, &v.DateTime)
		return v, n, err
	case TypeTime, TypeTime2:
		n, err := decodeDuration(b, &v.Duration)
		return v, n, err
	}
	s, isNull, n, err := ReadLenEncString(b)
	if err != nil {
		return Value{}, 0, err
	}
	if isNull {
		return Value{}, 0, fmt.Errorf("%w: NULL marker inside a binary value", ErrMalformed)
	}
	v.Bytes = s
	return v, n, nil
}

func decodeDateTime(b []byte, d *DateTime) (int, error) {
	if len(b) == 0 {
		return 0, ErrTruncated
	}
	l := int(b[0])
	if l != 0 && l != 4 && l != 7 && l != 11 {
		return 0, fmt.Errorf("%w: date/time value of %d bytes", ErrMalformed, l)
	}
	if len(b) < 1+l {
		return 0, ErrTruncated
	}
	if l >= 4 {
		d.Year = binary.LittleEndian.Uint16(b[1:])
		d.Month, d.Day = b[3], b[4]
	}
	if l >= 7 {
		d.Hour, d.Minute, d.Second = b[5], b[6], b[7]
	}
	if l == 11 {
		d.Microsecond = binary.LittleEndian.Uint32(b[8:])
	}
	return 1 + l, nil
}

func decodeDuration(b []byte, d *Duration) (int, error) {
	if len(b) == 0 {
		return 0, ErrTruncated
	}
	l := int(b[0])
	if l != 0 && l != 8 && l != 12 {
		return 0, fmt.Errorf("%w: time value of %d bytes", ErrMalformed, l)
	}
	if len(b) < 1+l {
		return 0, ErrTruncated
	}
	if l >= 8 {
		d.Negative = b[1] == 1
		d.Days = binary.LittleEndian.Uint32(b[2:])
		d.Hour, d.Minute, d.Second = b[6], b[7], b[8]
	}
	if l == 12 {
		d.Microsecond = binary.LittleEndian.Uint32(b[9:])
	}
	return 1 + l, nil
}

// AppendBinaryValue appends v in the binary protocol encoding of v.Type
// (nothing for a NULL value: NULLs live in the bitmap). Dates and times use
// the shortest form that holds the value.
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func AppendBinaryValue(dst []byte, v Value) []byte {
	if v.Null || v.Type == TypeNull {
		return dst
	}
	signedOrUnsigned := func() uint64 {
		if v.Unsigned {
			return v.Uint
		}
		return uint64(v.Int)
	}
	switch v.Type {
	case TypeTiny:
		return append(dst, byte(signedOrUnsigned()))
	case TypeShort, TypeYear:
		return appendUint16(dst, uint16(signedOrUnsigned()))
	case TypeLong, TypeInt24:
		return appendUint32(dst, uint32(signedOrUnsigned()))
	case TypeLongLong:
		return binary.LittleEndian.AppendUint64(dst, signedOrUnsigned())
	case TypeFloat:
		return appendUint32(dst, math.Float32bits(float32(v.Float)))
	case TypeDouble:
		return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v.Float))
	case TypeDate, TypeNewDate:
		d := v.DateTime
		if d.Year == 0 && d.Month == 0 && d.Day == 0 {
			return append(dst, 0)
		}
		dst = append(dst, 4)
		dst = appendUint16(dst, d.Year)
		return append(dst, d.Month, d.Day)
	case TypeDateTime, TypeTimestamp, TypeDateTime2, TypeTimestamp2:
		return appendDateTime(dst, v.DateTime)
	case TypeTime, TypeTime2:
		return appendDuration(dst, v.Duration)
	}
	return AppendLenEncString(dst, v.Bytes)
}

func appendDateTime(dst []byte, d DateTime) []byte {
	var l byte
	switch {
	case d.Microsecond != 0:
		l = 11
	case d.Hour != 0 || d.Minute != 0 || d.Second != 0:
		l = 7
	case d.Year != 0 || d.Month != 0 || d.Day != 0:
		l = 4
	default:
		return append(dst, 0)
	}
	dst = append(dst, l)
	dst = appendUint16(dst, d.Year)
	dst = append(dst, d.Month, d.Day)
	if l >= 7 {
		dst = append(dst, d.Hour, d.Minute, d.Second)
	}
	if l == 11 {
		dst = appendUint32(dst, d.Microsecond)
	}
	return dst
}

func appendDuration(dst []byte, d Duration) []byte {
	var l byte
	switch {
	case d.Microsecond != 0:
		l = 12
	case d.Days != 0 || d.Hour != 0 || d.Minute != 0 || d.Second != 0:
		l = 8
	default:
		return append(dst, 0)
	}
	neg := byte(0)
	if d.Negative {
		neg = 1
	}
	dst = append(dst, l, neg)
	dst = appendUint32(dst, d.Days)
	dst = append(dst, d.Hour, d.Minute, d.Second)
	if l == 12 {
		dst = appendUint32(dst, d.Microsecond)
	}
	return dst
}

// Null bitmap offsets: binary result rows reserve the first two bits.
const (
	rowNullBitmapOffset   = 2
	paramNullBitmapOffset = 0
)

// NullBitmapSize is the size of the NULL bitmap for n columns with the given
// bit offset (2 for result rows, 0 for COM_STMT_EXECUTE parameters).
//
// Kept although the proxy does not call it: the other side of a message the proxy
// parses or builds; tests and fuzz targets round-trip through it.
func NullBitmapSize(n, offset int) int { return (n + offset + 7) / 8 }

func isNullBit(bitmap []byte, i, offset int) bool {
	bit := i + offset
	return bit/8 < len(bitmap) && bitmap[bit/8]&(1<<(bit%8)) != 0
}

// BinaryRowReader decodes a binary protocol result row column by column
// without allocating.
type BinaryRowReader struct {
	bitmap  []byte
	r       reader
	columns int
	index   int
}

// NewBinaryRowReader checks the row header and NULL bitmap of a binary row
// with numColumns columns.
//
// Kept although the proxy does not call it: tests decode with it what the proxy relays undecoded.
func NewBinaryRowReader(payload []byte, numColumns int) (BinaryRowReader, error) {
	if numColumns < 0 {
		return BinaryRowReader{}, fmt.Errorf("%w: negative column count", ErrMalformed)
	}
	r := reader{b: payload}
	if h := r.u8(); r.err == nil && h != HeaderOK {
		return BinaryRowReader{}, fmt.Errorf("%w: binary row header 0x%02x", ErrMalformed, h)
	}
	if numColumns > len(payload)*8 {
		return BinaryRowReader{}, fmt.Errorf("binary row null bitmap: %w", ErrTruncated)
	}
	bitmap := r.bytes(NullBitmapSize(numColumns, rowNullBitmapOffset))
	if r.err != nil {
		return BinaryRowReader{}, fmt.Errorf("binary row: %w", r.err)
	}
	return BinaryRowReader{bitmap: bitmap, r: r, columns: numColumns}, nil
}

// Next decodes the next column, whose type and signedness come from its
// column definition.
func (br *BinaryRowReader) Next(t FieldType, unsigned bool) (Value, error) {
	if br.index >= br.columns {
		return Value{}, fmt.Errorf("%w: row has only %d columns", ErrMalformed, br.columns)
	}
	i := br.index
	br.index++
	if isNullBit(br.bitmap, i, rowNullBitmapOffset) {
		return Value{Type: t, Unsigned: unsigned, Null: true}, nil
	}
	v, n, err := DecodeBinaryValue(br.r.b[br.r.off:], t, unsigned)
	if err != nil {
		return Value{}, fmt.Errorf("binary row column %d: %w", i, err)
	}
	br.r.off += n
	return v, nil
}

// Remaining returns the bytes after the columns decoded so far; after the
// last column it must be empty for a well-formed row.
func (br *BinaryRowReader) Remaining() int { return br.r.remaining() }

// AppendBinaryRow appends the payload (no packet header) of a binary result
// row holding values.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func AppendBinaryRow(dst []byte, values []Value) []byte {
	dst = append(dst, HeaderOK)
	bitmapAt := len(dst)
	for range NullBitmapSize(len(values), rowNullBitmapOffset) {
		dst = append(dst, 0)
	}
	for i, v := range values {
		if v.Null || v.Type == TypeNull {
			bit := i + rowNullBitmapOffset
			dst[bitmapAt+bit/8] |= 1 << (bit % 8)
			continue
		}
		dst = AppendBinaryValue(dst, v)
	}
	return dst
}
