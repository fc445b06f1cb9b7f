package mysqlwire

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
)

// fakeServer is a minimal single-purpose MySQL server assembled from this
// package's builders and verifiers. It exists to check the server side of
// the protocol (greeting, auth verification, OK/ERR, result sets in both EOF
// modes) against an independent client implementation: go-sql-driver/mysql.
type fakeServer struct {
	t          *testing.T
	plugin     string
	caps       Capabilities
	nativeHash []byte
	sha2Hash   []byte
	forceFull  bool // caching_sha2: always ask for full authentication
	key        *rsa.PrivateKey

	mu       sync.Mutex
	events   []string
	listener net.Listener
	wg       sync.WaitGroup
	stopOnce sync.Once
}

// stop closes the listener and waits for every connection handler to
// return, so the recorded events are final. Handlers end when the client
// disconnects or after the 5-second read deadline.
func (s *fakeServer) stop() {
	s.stopOnce.Do(func() {
		s.listener.Close()
		s.wg.Wait()
	})
}

func (s *fakeServer) record(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf(format, args...))
}

func (s *fakeServer) Events() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

func startFakeServer(t *testing.T, s *fakeServer) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.t = t
	s.listener = ln
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer c.Close()
				if err := s.serve(c); err != nil {
					s.record("error: %v", err)
				}
			}()
		}
	}()
	t.Cleanup(s.stop)
	return ln.Addr().String()
}

// packetConn is the blocking read side the test server needs; the package
// itself never reads from a connection.
type packetConn struct {
	c   net.Conn
	buf []byte
}

func (pc *packetConn) read() (Packet, error) {
	for {
		p, ok, err := ReadPacket(pc.buf, 1<<20)
		if err != nil {
			return Packet{}, err
		}
		if ok {
			payload := append([]byte(nil), p.Payload...)
			pc.buf = pc.buf[p.Size:]
			return Packet{Payload: payload, Seq: p.Seq, Size: p.Size}, nil
		}
		tmp := make([]byte, 4096)
		if err := pc.c.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return Packet{}, err
		}
		n, err := pc.c.Read(tmp)
		if err != nil {
			return Packet{}, err
		}
		pc.buf = append(pc.buf, tmp[:n]...)
	}
}

func (s *fakeServer) serve(c net.Conn) error {
	pc := &packetConn{c: c}
	nonce, err := NewScramble()
	if err != nil {
		return err
	}
	greeting, _ := AppendHandshake(nil, Handshake{
		ServerVersion: []byte("5.5.5-10.11.0-fake"), ConnectionID: 9, AuthPluginData: nonce,
		Capabilities: s.caps, CharacterSet: 45, Status: StatusAutocommit, AuthPluginName: []byte(s.plugin),
	})
	if _, err := c.Write(greeting); err != nil {
		return err
	}
	p, err := pc.read()
	if err != nil {
		return err
	}
	hr, err := ParseHandshakeResponse(p.Payload)
	if err != nil {
		return err
	}
	caps := hr.Capabilities & s.caps
	s.record("login user=%s db=%s plugin=%s deprecateEOF=%v", hr.Username, hr.Database, hr.AuthPlugin, caps.Has(ClientDeprecateEOF))
	seq := p.Seq + 1
	var out []byte
	authErr := func() error {
		out, _ = AppendERR(out[:0], seq, ErAccessDenied, "", fmt.Sprintf("Access denied for user '%s'", hr.Username))
		_, err := c.Write(out)
		s.record("auth failed")
		return err
	}
	switch s.plugin {
	case AuthNativePassword:
		if _, err := VerifyNativePassword(s.nativeHash, nonce, hr.AuthResponse); err != nil {
			return authErr()
		}
	case AuthCachingSHA2:
		if !s.forceFull && VerifyCachingSHA2(s.sha2Hash, nonce, hr.AuthResponse) == nil {
			out, seq = AppendAuthMoreData(out[:0], seq, []byte{CachingSHA2FastAuthSuccess})
			s.record("fast auth")
		} else {
			out, seq = AppendAuthMoreData(out[:0], seq, []byte{CachingSHA2PerformFullAuth})
			if _, err := c.Write(out); err != nil {
				return err
			}
			out = out[:0]
			p, err := pc.read()
			if err != nil {
				return err
			}
			seq = p.Seq + 1
			if len(p.Payload) == 1 && p.Payload[0] == CachingSHA2RequestPublicKey {
				pemKey, err := MarshalRSAPublicKeyPEM(&s.key.PublicKey)
				if err != nil {
					return err
				}
				out, _ = AppendAuthMoreData(out[:0], seq, pemKey)
				if _, err := c.Write(out); err != nil {
					return err
				}
				out = out[:0]
				if p, err = pc.read(); err != nil {
					return err
				}
				seq = p.Seq + 1
			}
			pw, err := DecryptCachingSHA2Password(p.Payload, nonce, s.key)
			if err != nil || VerifyCachingSHA2Password(s.sha2Hash, pw) != nil {
				return authErr()
			}
			s.record("full auth")
		}
	}
	out, _ = AppendOK(out, seq, caps, OK{Status: StatusAutocommit})
	if _, err := c.Write(out); err != nil {
		return err
	}
	for {
		p, err := pc.read()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "EOF") {
				return nil
			}
			return err
		}
		cmd, _ := CommandOf(p.Payload)
		s.record("%s %s", cmd, p.Payload[1:])
		out = out[:0]
		switch cmd {
		case ComQuit:
			return nil
		case ComPing:
			out, _ = AppendOK(out, 1, caps, OK{Status: StatusAutocommit})
		case ComQuery:
			if string(p.Payload[1:]) != "SELECT id, name FROM t" {
				out, _ = AppendERR(out, 1, ErParseError, "", "only one query is known here")
				break
			}
			seq := uint8(1)
			out, seq = AppendPacket(out, seq, AppendLenEncInt(nil, 2))
			out, seq = AppendPacket(out, seq, AppendColumnDefinition(nil, ColumnDefinition{Table: []byte("t"), Name: []byte("id"), Type: TypeLongLong, CharacterSet: 63, ColumnLength: 20, Flags: FlagNotNull}))
			out, seq = AppendPacket(out, seq, AppendColumnDefinition(nil, ColumnDefinition{Table: []byte("t"), Name: []byte("name"), Type: TypeVarString, CharacterSet: 45, ColumnLength: 80}))
			if !caps.Has(ClientDeprecateEOF) {
				out, seq = AppendEOF(out, seq, 0, StatusAutocommit)
			}
			out, seq = AppendPacket(out, seq, AppendLenEncStr(AppendLenEncStr(nil, "1"), "ada"))
			out, seq = AppendPacket(out, seq, append(AppendLenEncStr(nil, "2"), lenEncNull))
			out, _ = AppendResultSetEnd(out, seq, caps, 0, StatusAutocommit)
		default:
			out, _ = AppendERR(out, 1, ErUnknownComError, "", "Unknown command")
		}
		if _, err := c.Write(out); err != nil {
			return err
		}
	}
}

func TestInteropWithGoSQLDriver(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	serverCaps := MySQL55Caps&^(ClientSSL|ClientCompress) | ClientConnectAttrs | ClientPluginAuthLenEncClientData | ClientSessionTrack
	tests := []struct {
		name       string
		plugin     string
		caps       Capabilities
		forceFull  bool
		password   string
		wantErr    bool
		wantEvents []string
	}{
		{name: "native password, classic EOF", plugin: AuthNativePassword, caps: serverCaps, password: "s3cret",
			wantEvents: []string{"deprecateEOF=false"}},
		{name: "native password, deprecate EOF", plugin: AuthNativePassword, caps: serverCaps | ClientDeprecateEOF, password: "s3cret",
			wantEvents: []string{"deprecateEOF=true"}},
		{name: "native password, wrong password", plugin: AuthNativePassword, caps: serverCaps, password: "nope", wantErr: true,
			wantEvents: []string{"auth failed"}},
		{name: "caching_sha2 fast path", plugin: AuthCachingSHA2, caps: serverCaps | ClientDeprecateEOF, password: "s3cret",
			wantEvents: []string{"fast auth"}},
		{name: "caching_sha2 full auth with RSA key exchange", plugin: AuthCachingSHA2, caps: serverCaps, forceFull: true, password: "s3cret",
			wantEvents: []string{"full auth"}},
		{name: "caching_sha2 full auth, wrong password", plugin: AuthCachingSHA2, caps: serverCaps, forceFull: true, password: "nope", wantErr: true,
			wantEvents: []string{"auth failed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := &fakeServer{
				plugin: tt.plugin, caps: tt.caps, forceFull: tt.forceFull, key: key,
				nativeHash: NativePasswordHash([]byte("s3cret")), sha2Hash: CachingSHA2Hash([]byte("s3cret")),
			}
			addr := startFakeServer(t, srv)
			cfg := mysql.NewConfig()
			cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = "app", tt.password, "tcp", addr, "shop"
			cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = 5*time.Second, 5*time.Second, 5*time.Second
			cfg.AllowNativePasswords = true
			connector, err := mysql.NewConnector(cfg)
			if err != nil {
				t.Fatal(err)
			}
			db := sql.OpenDB(connector)
			defer db.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err = db.PingContext(ctx)
			if tt.wantErr {
				var me *mysql.MySQLError
				if !errors.As(err, &me) || me.Number != uint16(ErAccessDenied) || string(me.SQLState[:]) != "28000" {
					t.Fatalf("err = %v, want MySQL error 1045 (28000)", err)
				}
			} else {
				if err != nil {
					t.Fatalf("ping: %v (server events %q)", err, srv.Events())
				}
				rows, err := db.QueryContext(ctx, "SELECT id, name FROM t")
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for rows.Next() {
					var id int64
					var name sql.NullString
					if err := rows.Scan(&id, &name); err != nil {
						t.Fatal(err)
					}
					got = append(got, fmt.Sprintf("%d:%s:%v", id, name.String, name.Valid))
				}
				if err := rows.Err(); err != nil {
					t.Fatal(err)
				}
				rows.Close()
				if strings.Join(got, ",") != "1:ada:true,2::false" {
					t.Fatalf("rows %q", got)
				}
				_, err = db.ExecContext(ctx, "DELETE FROM t")
				var me *mysql.MySQLError
				if !errors.As(err, &me) || me.Number != uint16(ErParseError) || string(me.SQLState[:]) != "42000" {
					t.Fatalf("unknown query: %v", err)
				}
			}
			db.Close()
			srv.stop()
			events := strings.Join(srv.Events(), "\n")
			if !strings.Contains(events, "login user=app db=shop plugin="+tt.plugin) {
				t.Errorf("events:\n%s", events)
			}
			for _, want := range tt.wantEvents {
				if !strings.Contains(events, want) {
					t.Errorf("missing event %q in:\n%s", want, events)
				}
			}
			if strings.Contains(events, "error:") {
				t.Errorf("server error:\n%s", events)
			}
		})
	}
}
