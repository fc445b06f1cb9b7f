package mysqlwire

// Capabilities is a capability set. The low 32 bits are the CLIENT_* flags of
// the MySQL protocol. The high 32 bits are MariaDB's extended capabilities,
// which travel in otherwise reserved bytes of the greeting and the handshake
// response only while the CLIENT_MYSQL bit (bit 0, CLIENT_LONG_PASSWORD in
// MySQL) is off; this is the same layout MariaDB's client library uses.
type Capabilities uint64

// Standard capability flags.
const (
	ClientLongPassword     Capabilities = 1 << 0 // MariaDB: CLIENT_MYSQL
	ClientFoundRows        Capabilities = 1 << 1
	ClientLongFlag         Capabilities = 1 << 2
	ClientConnectWithDB    Capabilities = 1 << 3
	ClientNoSchema         Capabilities = 1 << 4
	ClientCompress         Capabilities = 1 << 5
	ClientODBC             Capabilities = 1 << 6
	ClientLocalFiles       Capabilities = 1 << 7
	ClientIgnoreSpace      Capabilities = 1 << 8
	ClientProtocol41       Capabilities = 1 << 9
	ClientInteractive      Capabilities = 1 << 10
	ClientSSL              Capabilities = 1 << 11
	ClientIgnoreSIGPIPE    Capabilities = 1 << 12
	ClientTransactions     Capabilities = 1 << 13
	ClientReserved         Capabilities = 1 << 14
	ClientSecureConnection Capabilities = 1 << 15
	ClientMultiStatements  Capabilities = 1 << 16
	ClientMultiResults     Capabilities = 1 << 17
	ClientPSMultiResults   Capabilities = 1 << 18
	ClientPluginAuth       Capabilities = 1 << 19
	ClientConnectAttrs     Capabilities = 1 << 20
	// ClientPluginAuthLenEncClientData lets the auth response exceed 255 bytes.
	ClientPluginAuthLenEncClientData Capabilities = 1 << 21
	ClientCanHandleExpiredPasswords  Capabilities = 1 << 22
	ClientSessionTrack               Capabilities = 1 << 23
	// ClientDeprecateEOF drops the EOF after column definitions and turns the
	// result set terminator into an OK packet with a 0xFE header.
	ClientDeprecateEOF              Capabilities = 1 << 24
	ClientOptionalResultsetMetadata Capabilities = 1 << 25
	ClientZstdCompressionAlgorithm  Capabilities = 1 << 26
	ClientQueryAttributes           Capabilities = 1 << 27
	ClientMultiFactorAuthentication Capabilities = 1 << 28
	ClientCapabilityExtension       Capabilities = 1 << 29
	ClientSSLVerifyServerCert       Capabilities = 1 << 30
	ClientRememberOptions           Capabilities = 1 << 31
	ClientMySQL                     Capabilities = ClientLongPassword
	MariaDBClientProgress           Capabilities = 1 << 32
	MariaDBClientComMulti           Capabilities = 1 << 33
	MariaDBClientStmtBulkOperations Capabilities = 1 << 34
	MariaDBClientExtendedTypeInfo   Capabilities = 1 << 35 // a.k.a. EXTENDED_METADATA
	MariaDBClientCacheMetadata      Capabilities = 1 << 36
	MariaDBClientBulkUnitResults    Capabilities = 1 << 37
	standardMask                    Capabilities = 0xFFFFFFFF
)

// MySQL55Caps is what a MySQL 5.5 server offers at most: the flags up to
// CLIENT_PLUGIN_AUTH, and none of CONNECT_ATTRS, SESSION_TRACK, DEPRECATE_EOF
// or MariaDB's extensions. Mask the capabilities a proxy advertises (or
// accepts) with it to look like 5.5; pair it with MySQL55AuthPlugin.
const MySQL55Caps Capabilities = ClientPluginAuth<<1 - 1

// MySQL55AuthPlugin is the only authentication plugin a 5.5 server uses by
// default.
const MySQL55AuthPlugin = AuthNativePassword

// Has reports whether every flag in f is set in c.
func (c Capabilities) Has(f Capabilities) bool { return c&f == f }

// Standard returns the 32 MySQL capability bits.
func (c Capabilities) Standard() uint32 { return uint32(c & standardMask) }

// Extended returns MariaDB's 32 extended capability bits.
func (c Capabilities) Extended() uint32 { return uint32(c >> 32) }

// usesMariaDBExtended reports whether the extended capabilities are carried
// on the wire: only when the CLIENT_MYSQL bit is clear.
func (c Capabilities) usesMariaDBExtended() bool { return c&ClientMySQL == 0 }

// StatusFlags are the SERVER_STATUS_* bits carried by OK and EOF packets.
type StatusFlags uint16

// Server status flags.
const (
	StatusInTrans             StatusFlags = 0x0001
	StatusAutocommit          StatusFlags = 0x0002
	StatusMoreResultsExist    StatusFlags = 0x0008
	StatusNoGoodIndexUsed     StatusFlags = 0x0010
	StatusNoIndexUsed         StatusFlags = 0x0020
	StatusCursorExists        StatusFlags = 0x0040
	StatusLastRowSent         StatusFlags = 0x0080
	StatusDBDropped           StatusFlags = 0x0100
	StatusNoBackslashEscapes  StatusFlags = 0x0200
	StatusMetadataChanged     StatusFlags = 0x0400
	StatusQueryWasSlow        StatusFlags = 0x0800
	StatusPSOutParams         StatusFlags = 0x1000
	StatusInTransReadonly     StatusFlags = 0x2000
	StatusSessionStateChanged StatusFlags = 0x4000
	// StatusAnsiQuotes is MariaDB-only: sql_mode contains ANSI_QUOTES.
	StatusAnsiQuotes StatusFlags = 0x8000
)

// Has reports whether every flag in f is set in s.
func (s StatusFlags) Has(f StatusFlags) bool { return s&f == f }
