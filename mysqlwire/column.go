package mysqlwire

import "fmt"

// FieldType is a MYSQL_TYPE_* column or parameter type.
type FieldType uint8

// Field types.
const (
	TypeDecimal    FieldType = 0x00
	TypeTiny       FieldType = 0x01
	TypeShort      FieldType = 0x02
	TypeLong       FieldType = 0x03
	TypeFloat      FieldType = 0x04
	TypeDouble     FieldType = 0x05
	TypeNull       FieldType = 0x06
	TypeTimestamp  FieldType = 0x07
	TypeLongLong   FieldType = 0x08
	TypeInt24      FieldType = 0x09
	TypeDate       FieldType = 0x0A
	TypeTime       FieldType = 0x0B
	TypeDateTime   FieldType = 0x0C
	TypeYear       FieldType = 0x0D
	TypeNewDate    FieldType = 0x0E
	TypeVarchar    FieldType = 0x0F
	TypeBit        FieldType = 0x10
	TypeTimestamp2 FieldType = 0x11
	TypeDateTime2  FieldType = 0x12
	TypeTime2      FieldType = 0x13
	TypeJSON       FieldType = 0xF5
	TypeNewDecimal FieldType = 0xF6
	TypeEnum       FieldType = 0xF7
	TypeSet        FieldType = 0xF8
	TypeTinyBlob   FieldType = 0xF9
	TypeMediumBlob FieldType = 0xFA
	TypeLongBlob   FieldType = 0xFB
	TypeBlob       FieldType = 0xFC
	TypeVarString  FieldType = 0xFD
	TypeString     FieldType = 0xFE
	TypeGeometry   FieldType = 0xFF
)

// ColumnFlags are the column definition flags.
type ColumnFlags uint16

// Column flags used by the binary protocol and proxies.
const (
	FlagNotNull       ColumnFlags = 0x0001
	FlagPrimaryKey    ColumnFlags = 0x0002
	FlagUniqueKey     ColumnFlags = 0x0004
	FlagMultipleKey   ColumnFlags = 0x0008
	FlagBlob          ColumnFlags = 0x0010
	FlagUnsigned      ColumnFlags = 0x0020
	FlagZerofill      ColumnFlags = 0x0040
	FlagBinary        ColumnFlags = 0x0080
	FlagEnum          ColumnFlags = 0x0100
	FlagAutoIncrement ColumnFlags = 0x0200
	FlagTimestamp     ColumnFlags = 0x0400
	FlagSet           ColumnFlags = 0x0800
	FlagNum           ColumnFlags = 0x8000
)

// ColumnDefinition is Protocol::ColumnDefinition41. Slices alias the parsed
// payload.
type ColumnDefinition struct {
	Catalog  []byte // always "def"
	Schema   []byte
	Table    []byte
	OrgTable []byte
	Name     []byte
	OrgName  []byte
	// ExtendedMetadata is MariaDB's extended type info (type/format
	// entries), present with MARIADB_CLIENT_EXTENDED_TYPE_INFO.
	ExtendedMetadata []byte
	CharacterSet     uint16
	ColumnLength     uint32
	Type             FieldType
	Flags            ColumnFlags
	Decimals         uint8
	// DefaultValue is only sent in COM_FIELD_LIST responses.
	DefaultValue []byte
}

// columnFixedLength is the length of the fixed-size tail of a definition.
const columnFixedLength = 0x0C

// ParseColumnDefinition decodes a column (or parameter) definition. caps
// decide whether MariaDB's extended metadata is present.
//
// Kept although the proxy does not call it: tests decode with it what the proxy relays undecoded.
func ParseColumnDefinition(payload []byte, caps Capabilities) (ColumnDefinition, error) {
	var c ColumnDefinition
	r := reader{b: payload}
	c.Catalog = r.lenEncString()
	c.Schema = r.lenEncString()
	c.Table = r.lenEncString()
	c.OrgTable = r.lenEncString()
	c.Name = r.lenEncString()
	c.OrgName = r.lenEncString()
	if caps&MariaDBClientExtendedTypeInfo != 0 {
		c.ExtendedMetadata = r.lenEncString()
	}
	fixed := r.lenEncInt()
	if r.err == nil && fixed < columnFixedLength {
		return ColumnDefinition{}, fmt.Errorf("%w: column definition fixed part is %d bytes", ErrMalformed, fixed)
	}
	if r.err == nil && fixed > uint64(r.remaining()) {
		return ColumnDefinition{}, fmt.Errorf("parse column definition: %w", ErrTruncated)
	}
	end := r.off + int(fixed)
	c.CharacterSet = r.u16()
	c.ColumnLength = r.u32()
	c.Type = FieldType(r.u8())
	c.Flags = ColumnFlags(r.u16())
	c.Decimals = r.u8()
	if r.err != nil {
		return ColumnDefinition{}, fmt.Errorf("parse column definition: %w", r.err)
	}
	r.off = end // skip the filler and any future fixed fields
	if r.remaining() > 0 {
		c.DefaultValue = r.lenEncString()
	}
	if r.err != nil {
		return ColumnDefinition{}, fmt.Errorf("parse column definition default: %w", r.err)
	}
	return c, nil
}

// AppendColumnDefinition appends the payload of a column definition (without
// a packet header). ExtendedMetadata is written when non-nil, so pass it
// only to clients with MARIADB_CLIENT_EXTENDED_TYPE_INFO.
func AppendColumnDefinition(dst []byte, c ColumnDefinition) []byte {
	catalog := c.Catalog
	if catalog == nil {
		catalog = []byte("def")
	}
	dst = AppendLenEncString(dst, catalog)
	dst = AppendLenEncString(dst, c.Schema)
	dst = AppendLenEncString(dst, c.Table)
	dst = AppendLenEncString(dst, c.OrgTable)
	dst = AppendLenEncString(dst, c.Name)
	dst = AppendLenEncString(dst, c.OrgName)
	if c.ExtendedMetadata != nil {
		dst = AppendLenEncString(dst, c.ExtendedMetadata)
	}
	dst = append(dst, columnFixedLength)
	dst = appendUint16(dst, c.CharacterSet)
	dst = appendUint32(dst, c.ColumnLength)
	dst = append(dst, byte(c.Type))
	dst = appendUint16(dst, uint16(c.Flags))
	dst = append(dst, c.Decimals, 0, 0)
	if c.DefaultValue != nil {
		dst = AppendLenEncString(dst, c.DefaultValue)
	}
	return dst
}

// ColumnSpans are where the parts a proxy may rewrite lie in a column (or
// parameter) definition payload: the name (its length-encoded field,
// prefix included) and MariaDB's extended type metadata.
type ColumnSpans struct {
	NameAt, NameEnd int
	// ExtAt is where the extended metadata is, or would be (after the
	// six names); ExtEnd where it ends (ExtAt when there is none).
	ExtAt, ExtEnd int
}

// ParseColumnSpans locates ColumnSpans in payload, which carries extended
// metadata when hasExt (MARIADB_CLIENT_EXTENDED_TYPE_INFO negotiated with
// its sender), so that a proxy can relay a definition to a client that
// negotiated otherwise, or rename the column, without decoding the rest.
func ParseColumnSpans(payload []byte, hasExt bool) (ColumnSpans, error) {
	var sp ColumnSpans
	r := reader{b: payload}
	for range 4 {
		r.lenEncString()
	}
	sp.NameAt = r.off
	r.lenEncString()
	sp.NameEnd = r.off
	r.lenEncString() // org_name
	sp.ExtAt = r.off
	if hasExt {
		r.lenEncString()
	}
	sp.ExtEnd = r.off
	if r.err != nil {
		return ColumnSpans{}, fmt.Errorf("column definition: %w", r.err)
	}
	return sp, nil
}
