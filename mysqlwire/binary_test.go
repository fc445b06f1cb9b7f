package mysqlwire

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

func TestBinaryValueRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		v    Value
		size int
	}{
		{"tiny signed", Value{Type: TypeTiny, Int: -7}, 1},
		{"tiny unsigned", Value{Type: TypeTiny, Unsigned: true, Uint: 200}, 1},
		{"short", Value{Type: TypeShort, Int: -30000}, 2},
		{"year", Value{Type: TypeYear, Unsigned: true, Uint: 1999}, 2},
		{"int24", Value{Type: TypeInt24, Int: -8388608}, 4},
		{"long unsigned", Value{Type: TypeLong, Unsigned: true, Uint: math.MaxUint32}, 4},
		{"longlong", Value{Type: TypeLongLong, Int: math.MinInt64}, 8},
		{"longlong unsigned", Value{Type: TypeLongLong, Unsigned: true, Uint: math.MaxUint64}, 8},
		{"float", Value{Type: TypeFloat, Float: -0.5}, 4},
		{"double", Value{Type: TypeDouble, Float: math.Pi}, 8},
		{"decimal", Value{Type: TypeNewDecimal, Bytes: []byte("-12.340")}, 8},
		{"old decimal", Value{Type: TypeDecimal, Bytes: []byte("1")}, 2},
		{"zero date", Value{Type: TypeDate}, 1},
		{"date", Value{Type: TypeDate, DateTime: DateTime{Year: 2024, Month: 12, Day: 31}}, 5},
		{"datetime date only", Value{Type: TypeDateTime, DateTime: DateTime{Year: 2024, Month: 1, Day: 2}}, 5},
		{"datetime seconds", Value{Type: TypeDateTime, DateTime: DateTime{Year: 2024, Month: 1, Day: 2, Second: 3}}, 8},
		{"timestamp micro", Value{Type: TypeTimestamp, DateTime: DateTime{Year: 1970, Month: 1, Day: 1, Microsecond: 1}}, 12},
		{"zero time", Value{Type: TypeTime}, 1},
		{"time", Value{Type: TypeTime, Duration: Duration{Days: 2, Hour: 3, Minute: 4, Second: 5}}, 9},
		{"negative time micro", Value{Type: TypeTime, Duration: Duration{Negative: true, Second: 1, Microsecond: 999999}}, 13},
		{"varchar", Value{Type: TypeVarchar, Bytes: []byte("v")}, 2},
		{"var string 300 bytes", Value{Type: TypeVarString, Bytes: bytes.Repeat([]byte{'x'}, 300)}, 303},
		{"string", Value{Type: TypeString, Bytes: []byte{}}, 1},
		{"blob", Value{Type: TypeBlob, Bytes: []byte{0, 1, 2}}, 4},
		{"tiny blob", Value{Type: TypeTinyBlob, Bytes: []byte{0}}, 2},
		{"medium blob", Value{Type: TypeMediumBlob, Bytes: []byte{0}}, 2},
		{"long blob", Value{Type: TypeLongBlob, Bytes: []byte{0}}, 2},
		{"json", Value{Type: TypeJSON, Bytes: []byte(`{}`)}, 3},
		{"bit", Value{Type: TypeBit, Bytes: []byte{1, 0}}, 3},
		{"enum", Value{Type: TypeEnum, Bytes: []byte("a")}, 2},
		{"set", Value{Type: TypeSet, Bytes: []byte("a,b")}, 4},
		{"geometry", Value{Type: TypeGeometry, Bytes: make([]byte, 25)}, 26},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := AppendBinaryValue(nil, tt.v)
			if len(enc) != tt.size {
				t.Fatalf("encoded %d bytes, want %d", len(enc), tt.size)
			}
			got, n, err := DecodeBinaryValue(append(enc, 0xEE), tt.v.Type, tt.v.Unsigned)
			if err != nil || n != len(enc) {
				t.Fatalf("n %d err %v", n, err)
			}
			if !bytes.Equal(AppendBinaryValue(nil, got), enc) {
				t.Fatalf("round trip: %+v", got)
			}
			switch {
			case fixedBinarySize(tt.v.Type) > 0 && tt.v.Type != TypeFloat && tt.v.Type != TypeDouble:
				if tt.v.Unsigned && got.Uint != tt.v.Uint || !tt.v.Unsigned && got.Int != tt.v.Int {
					t.Fatalf("integer %+v", got)
				}
			case tt.v.Type == TypeFloat || tt.v.Type == TypeDouble:
				if got.Float != tt.v.Float && float32(got.Float) != float32(tt.v.Float) {
					t.Fatalf("float %v", got.Float)
				}
			}
			if got.DateTime != tt.v.DateTime || got.Duration != tt.v.Duration || !bytes.Equal(got.Bytes, tt.v.Bytes) {
				t.Fatalf("got %+v want %+v", got, tt.v)
			}
			for cut := range len(enc) {
				if _, _, err := DecodeBinaryValue(enc[:cut], tt.v.Type, tt.v.Unsigned); err == nil {
					t.Fatalf("truncated at %d accepted", cut)
				}
			}
		})
	}
	for _, bad := range []struct {
		b []byte
		t FieldType
	}{{[]byte{5, 0, 0, 0, 0, 0}, TypeDate}, {[]byte{3, 0, 0, 0}, TypeTime}, {[]byte{0xFB}, TypeBlob}, {[]byte{0xFF}, TypeBlob}} {
		if _, _, err := DecodeBinaryValue(bad.b, bad.t, false); err == nil {
			t.Errorf("% x as %d accepted", bad.b, bad.t)
		}
	}
	if v, n, err := DecodeBinaryValue(nil, TypeNull, false); err != nil || n != 0 || !v.Null {
		t.Errorf("NULL type: %+v %d %v", v, n, err)
	}
}

func TestBinaryRow(t *testing.T) {
	values := []Value{
		{Type: TypeLong, Int: 1},
		{Type: TypeVarString, Null: true},
		{Type: TypeVarString, Bytes: []byte("x")},
		{Type: TypeNull, Null: true},
		{Type: TypeDouble, Float: 2},
		{Type: TypeLongLong, Null: true},
		{Type: TypeTiny, Int: 1},
	}
	row := AppendBinaryRow(nil, values)
	if row[0] != 0 || len(row) != 1+NullBitmapSize(len(values), 2)+4+2+8+1 {
		t.Fatalf("row % x", row)
	}
	br, err := NewBinaryRowReader(row, len(values))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range values {
		got, err := br.Next(want.Type, want.Unsigned)
		if err != nil || got.Null != want.Null {
			t.Fatalf("column %d: %+v %v", i, got, err)
		}
	}
	if br.Remaining() != 0 {
		t.Fatalf("%d bytes left", br.Remaining())
	}
	if _, err := br.Next(TypeLong, false); err == nil {
		t.Fatal("read past the last column")
	}
	if _, err := NewBinaryRowReader([]byte{1, 0}, 1); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad header: %v", err)
	}
	if _, err := NewBinaryRowReader([]byte{0}, 10); !errors.Is(err, ErrTruncated) {
		t.Fatalf("short bitmap: %v", err)
	}
	if _, err := NewBinaryRowReader(row, -1); err == nil {
		t.Fatal("negative column count accepted")
	}
	if NullBitmapSize(6, 2) != 1 || NullBitmapSize(7, 2) != 2 || NullBitmapSize(8, 0) != 1 || NullBitmapSize(9, 0) != 2 {
		t.Fatal("NullBitmapSize")
	}
}

func TestColumnDefinitionRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		caps Capabilities
		c    ColumnDefinition
	}{
		{"plain", caps41, ColumnDefinition{Schema: []byte("s"), Table: []byte("t"), OrgTable: []byte("T"), Name: []byte("n"), OrgName: []byte("N"), CharacterSet: 63, ColumnLength: 11, Type: TypeLong, Flags: FlagNotNull | FlagUnsigned, Decimals: 0}},
		{"field list default", caps41, ColumnDefinition{Name: []byte("n"), Type: TypeVarString, DefaultValue: []byte("dflt")}},
		{"extended metadata", caps41 | MariaDBClientExtendedTypeInfo, ColumnDefinition{Name: []byte("j"), Type: TypeBlob, ExtendedMetadata: []byte("\x00\x04json")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := AppendColumnDefinition(nil, tt.c)
			got, err := ParseColumnDefinition(enc, tt.caps)
			if err != nil {
				t.Fatal(err)
			}
			if string(got.Catalog) != "def" || !bytes.Equal(got.Schema, tt.c.Schema) || !bytes.Equal(got.Name, tt.c.Name) ||
				!bytes.Equal(got.OrgName, tt.c.OrgName) || got.Type != tt.c.Type || got.Flags != tt.c.Flags ||
				got.ColumnLength != tt.c.ColumnLength || got.CharacterSet != tt.c.CharacterSet ||
				!bytes.Equal(got.DefaultValue, tt.c.DefaultValue) || !bytes.Equal(got.ExtendedMetadata, tt.c.ExtendedMetadata) {
				t.Fatalf("got %+v want %+v", got, tt.c)
			}
			withoutDefault := len(enc)
			if tt.c.DefaultValue != nil {
				withoutDefault -= LenEncIntSize(uint64(len(tt.c.DefaultValue))) + len(tt.c.DefaultValue)
			}
			for cut := range len(enc) {
				if cut == withoutDefault {
					continue // a definition without a default value is complete
				}
				if _, err := ParseColumnDefinition(enc[:cut], tt.caps); err == nil {
					t.Fatalf("truncated at %d accepted", cut)
				}
			}
		})
	}
	bad := AppendColumnDefinition(nil, ColumnDefinition{Name: []byte("n")})
	bad[4+1+0+1+1] = 3 // fixed-length field says 3 bytes
	if _, err := ParseColumnDefinition(bad, caps41); err == nil {
		t.Fatal("short fixed part accepted")
	}
}

func TestTextRow(t *testing.T) {
	fields := [][]byte{[]byte("1"), nil, {}, bytes.Repeat([]byte{'x'}, 300)}
	row := AppendTextRow(nil, fields)
	it := NewTextRowIter(row)
	for i, want := range fields {
		got, isNull, ok := it.Next()
		if !ok || isNull != (want == nil) || !bytes.Equal(got, want) {
			t.Fatalf("field %d: %q null=%v ok=%v", i, got, isNull, ok)
		}
	}
	if _, _, ok := it.Next(); ok || it.Err() != nil {
		t.Fatalf("past the end: ok=%v err=%v", ok, it.Err())
	}
	bad := NewTextRowIter(row[:len(row)-1])
	for {
		if _, _, ok := bad.Next(); !ok {
			break
		}
	}
	if !errors.Is(bad.Err(), ErrTruncated) {
		t.Fatalf("truncated row: %v", bad.Err())
	}
	// Golden text rows decode field by field.
	pks := goldenPackets(t, "text_classic.bin")
	first := NewTextRowIter(pks[5].Payload)
	id, _, _ := first.Next()
	name, _, _ := first.Next()
	if string(id) != "1" || string(name) != "ada" {
		t.Fatalf("golden row %q %q", id, name)
	}
	second := NewTextRowIter(pks[6].Payload)
	second.Next()
	second.Next()
	if _, isNull, ok := second.Next(); !ok || !isNull {
		t.Fatal("bob's age should be NULL")
	}
}
