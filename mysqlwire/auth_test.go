package mysqlwire

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"testing"
)

var testNonce = []byte("abcdefghijklmnopqrst")

func TestNativePassword(t *testing.T) {
	// PASSWORD('secret') in MySQL 5.x/MariaDB is the text form checked below.
	s1 := sha1.Sum([]byte("secret"))
	s2 := sha1.Sum(s1[:])
	if !bytes.Equal(NativePasswordHash([]byte("secret")), s2[:]) {
		t.Fatal("NativePasswordHash is not SHA1(SHA1(pw))")
	}
	const text = "*14E65567ABDB5135D0CFD9A70B3032C179A49EE7" // mysql.user's form of PASSWORD('secret')
	back, err := ParseNativePasswordHashText(text)
	if err != nil || !bytes.Equal(back, s2[:]) {
		t.Fatalf("parse hash text: %v", err)
	}
	for _, bad := range []string{"", "14E65567ABDB5135D0CFD9A70B3032C179A49EE7", "*XX", "*" + hex.EncodeToString(make([]byte, 19)) + "ZZ"} {
		if _, err := ParseNativePasswordHashText(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}

	tests := []struct {
		name     string
		stored   []byte
		password string
		wantErr  bool
	}{
		{"right password", NativePasswordHash([]byte("secret")), "secret", false},
		{"wrong password", NativePasswordHash([]byte("secret")), "Secret", true},
		{"empty password, empty stored", nil, "", false},
		{"password sent for passwordless account", nil, "x", true},
		{"empty password for protected account", NativePasswordHash([]byte("secret")), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := NativePasswordScramble([]byte(tt.password), testNonce)
			stage1, err := VerifyNativePassword(tt.stored, testNonce, resp)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && tt.password != "" {
				want := sha1.Sum([]byte(tt.password))
				if !bytes.Equal(stage1, want[:]) {
					t.Fatal("recovered stage1 is not SHA1(pw)")
				}
				if !bytes.Equal(NativeScrambleFromStage1(stage1, []byte("another-nonce-123456")), NativePasswordScramble([]byte(tt.password), []byte("another-nonce-123456"))) {
					t.Fatal("scramble from stage1 differs from scramble from password")
				}
			}
		})
	}
	// The response depends on the nonce: replaying it against another fails.
	resp := NativePasswordScramble([]byte("secret"), testNonce)
	if _, err := VerifyNativePassword(NativePasswordHash([]byte("secret")), []byte("ZZZZZZZZZZZZZZZZZZZZ"), resp); !errors.Is(err, ErrAuthFailed) {
		t.Fatalf("replay: %v", err)
	}
}

func TestCachingSHA2FastPath(t *testing.T) {
	stored := CachingSHA2Hash([]byte("pässword"))
	tests := []struct {
		name     string
		password string
		nonce    []byte
		wantErr  bool
	}{
		{"right", "pässword", testNonce, false},
		{"wrong", "password", testNonce, true},
		{"empty response", "", testNonce, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := CachingSHA2Scramble([]byte(tt.password), tt.nonce)
			if err := VerifyCachingSHA2(stored, testNonce, resp); (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
		})
	}
	// Pin the operand order of the definition (MySQL's
	// generate_sha256_scramble): SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) || nonce).
	s1 := sha256.Sum256([]byte("x"))
	s2 := sha256.Sum256(s1[:])
	s3 := sha256.Sum256(append(s2[:], testNonce...))
	for i := range s3 {
		s3[i] ^= s1[i]
	}
	if resp := CachingSHA2Scramble([]byte("x"), testNonce); !bytes.Equal(resp, s3[:]) {
		t.Fatalf("scramble % x, want % x", resp, s3)
	}
	if err := VerifyCachingSHA2Password(stored, []byte("pässword")); err != nil {
		t.Fatal(err)
	}
	if err := VerifyCachingSHA2Password(stored, []byte("nope")); !errors.Is(err, ErrAuthFailed) {
		t.Fatal("wrong full-auth password accepted")
	}
	if got := CachingSHA2CleartextPassword([]byte("pw")); !bytes.Equal(got, []byte("pw\x00")) {
		t.Fatalf("cleartext %q", got)
	}
}

func TestCachingSHA2RSAExchange(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	pemKey, err := MarshalRSAPublicKeyPEM(&key.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, pw := range []string{"", "short", "a password that is longer than the twenty byte nonce"} {
		ct, err := EncryptCachingSHA2Password([]byte(pw), testNonce, pemKey)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecryptCachingSHA2Password(ct, testNonce, key)
		if err != nil || string(got) != pw {
			t.Fatalf("%q: got %q err %v", pw, got, err)
		}
		// With another nonce the unmasking yields garbage, never the password.
		if got, err := DecryptCachingSHA2Password(ct, []byte("ZZZZZZZZZZZZZZZZZZZZ"), key); err == nil && string(got) == pw && pw != "" {
			t.Fatal("ciphertext not bound to the nonce")
		}
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&key.PublicKey)})
	if _, err := ParseRSAPublicKeyPEM(pkcs1); err != nil {
		t.Fatalf("PKCS#1 key: %v", err)
	}
	for _, bad := range [][]byte{nil, []byte("not pem"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2}})} {
		if _, err := EncryptCachingSHA2Password([]byte("pw"), testNonce, bad); err == nil {
			t.Errorf("bad key %q accepted", bad)
		}
	}
	if _, err := DecryptCachingSHA2Password([]byte("garbage"), testNonce, key); err == nil {
		t.Error("garbage ciphertext decrypted")
	}
}

func TestNewScramble(t *testing.T) {
	a, err := NewScramble()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := NewScramble()
	if len(a) != ScrambleLength || bytes.Equal(a, b) {
		t.Fatalf("scrambles %q %q", a, b)
	}
	for _, c := range a {
		if c == 0 || c == '$' || c < 33 || c > 126 {
			t.Fatalf("scramble byte %d", c)
		}
	}
}
