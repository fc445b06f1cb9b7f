package mysqlwire

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" //nolint:gosec // mandated by mysql_native_password and the RSA-OAEP padding servers use
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
)

// Authentication plugin names.
const (
	AuthNativePassword    = "mysql_native_password"
	AuthCachingSHA2       = "caching_sha2_password"
	AuthSHA256Password    = "sha256_password"
	AuthClearPassword     = "mysql_clear_password"
	AuthEd25519           = "client_ed25519"
	AuthOldPassword       = "mysql_old_password"
	ScrambleLength        = 20 // nonce length used by native and caching_sha2
	nativeHashLength      = sha1.Size
	cachingSHA2HashLength = sha256.Size
)

// caching_sha2_password exchange bytes.
const (
	// CachingSHA2RequestPublicKey is the client's request for the server's
	// RSA public key (sent as a lone byte).
	CachingSHA2RequestPublicKey = 0x02
	// CachingSHA2FastAuthSuccess follows an AuthMoreData header (0x01) when
	// the scramble matched the server's cache; an OK packet follows.
	CachingSHA2FastAuthSuccess = 0x03
	// CachingSHA2PerformFullAuth follows 0x01 when the server needs the
	// password itself: cleartext over TLS, or RSA-encrypted otherwise.
	CachingSHA2PerformFullAuth = 0x04
)

// ErrAuthFailed means a scramble or password did not match the stored secret.
var ErrAuthFailed = errors.New("mysqlwire: authentication failed")

// NativePasswordScramble computes the mysql_native_password auth response
// SHA1(pw) XOR SHA1(nonce + SHA1(SHA1(pw))). An empty password yields an
// empty response, as the protocol requires.
func NativePasswordScramble(password, nonce []byte) []byte {
	if len(password) == 0 {
		return nil
	}
	stage1 := sha1.Sum(password)
	return NativeScrambleFromStage1(stage1[:], nonce)
}

// NativeScrambleFromStage1 computes the native scramble from SHA1(pw) alone.
// A proxy that learned SHA1(pw) by verifying a client (VerifyNativePassword)
// can log into backends with it without ever knowing the password.
func NativeScrambleFromStage1(stage1, nonce []byte) []byte {
	stage2 := sha1.Sum(stage1)
	h := sha1.New()
	h.Write(nonce)
	h.Write(stage2[:])
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= stage1[i]
	}
	return out
}

// NativePasswordHash returns SHA1(SHA1(password)), the secret a server (or
// the proxy) stores for mysql_native_password.
func NativePasswordHash(password []byte) []byte {
	s1 := sha1.Sum(password)
	s2 := sha1.Sum(s1[:])
	return s2[:]
}

// ParseNativePasswordHashText decodes the '*'+hex form.
func ParseNativePasswordHashText(s string) ([]byte, error) {
	if len(s) != 1+2*nativeHashLength || s[0] != '*' {
		return nil, fmt.Errorf("%w: native password hash must be '*' and 40 hex digits", ErrMalformed)
	}
	b, err := hex.DecodeString(s[1:])
	if err != nil {
		return nil, fmt.Errorf("decode native password hash: %w", err)
	}
	return b, nil
}

// VerifyNativePassword checks a client's mysql_native_password response
// against the stored SHA1(SHA1(pw)) for the nonce the server sent. On
// success it returns SHA1(pw), which NativeScrambleFromStage1 can use to
// authenticate elsewhere. An empty stored hash means "no password" and
// accepts only an empty response.
func VerifyNativePassword(stored, nonce, response []byte) (stage1 []byte, err error) {
	if len(stored) == 0 {
		if len(response) == 0 {
			return nil, nil
		}
		return nil, ErrAuthFailed
	}
	if len(stored) != nativeHashLength || len(response) != nativeHashLength {
		return nil, ErrAuthFailed
	}
	h := sha1.New()
	h.Write(nonce)
	h.Write(stored)
	candidate := h.Sum(nil)
	for i := range candidate {
		candidate[i] ^= response[i]
	}
	check := sha1.Sum(candidate)
	if subtle.ConstantTimeCompare(check[:], stored) != 1 {
		return nil, ErrAuthFailed
	}
	return candidate, nil
}

// CachingSHA2Scramble computes the caching_sha2_password fast-path response
// SHA256(pw) XOR SHA256(SHA256(SHA256(pw)) + nonce). An empty password
// yields an empty response.
func CachingSHA2Scramble(password, nonce []byte) []byte {
	if len(password) == 0 {
		return nil
	}
	s1 := sha256.Sum256(password)
	s2 := sha256.Sum256(s1[:])
	h := sha256.New()
	h.Write(s2[:])
	h.Write(nonce)
	out := h.Sum(nil)
	for i := range out {
		out[i] ^= s1[i]
	}
	return out
}

// CachingSHA2Hash returns SHA256(SHA256(password)), the secret the proxy
// stores to verify caching_sha2_password fast authentication.
func CachingSHA2Hash(password []byte) []byte {
	s1 := sha256.Sum256(password)
	s2 := sha256.Sum256(s1[:])
	return s2[:]
}

// VerifyCachingSHA2 checks a fast-path caching_sha2_password response
// against the stored SHA256(SHA256(pw)). With the stored value at hand a
// mismatch means a wrong password (a real server's cache miss has no
// equivalent here), so the caller can reject right away.
func VerifyCachingSHA2(stored, nonce, response []byte) error {
	if len(stored) != cachingSHA2HashLength || len(response) != cachingSHA2HashLength {
		return ErrAuthFailed
	}
	h := sha256.New()
	h.Write(stored)
	h.Write(nonce)
	candidate := h.Sum(nil)
	for i := range candidate {
		candidate[i] ^= response[i]
	}
	check := sha256.Sum256(candidate)
	if subtle.ConstantTimeCompare(check[:], stored) != 1 {
		return ErrAuthFailed
	}
	return nil
}

// VerifyCachingSHA2Password checks a password received in full
// authentication (cleartext over TLS, or decrypted with
// DecryptCachingSHA2Password) against the stored SHA256(SHA256(pw)).
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func VerifyCachingSHA2Password(stored, password []byte) error {
	if subtle.ConstantTimeCompare(CachingSHA2Hash(password), stored) != 1 {
		return ErrAuthFailed
	}
	return nil
}

// CachingSHA2CleartextPassword is the full-authentication payload over a
// secure channel: the password followed by a NUL byte.
func CachingSHA2CleartextPassword(password []byte) []byte {
	out := make([]byte, 0, len(password)+1)
	return append(append(out, password...), 0)
}

// xorNonce XORs (password + NUL) with the nonce repeated, as both sides of
// the RSA exchange do to bind the ciphertext to this handshake.
func xorNonce(passwordNUL, nonce []byte) []byte {
	out := make([]byte, len(passwordNUL))
	for i := range passwordNUL {
		out[i] = passwordNUL[i] ^ nonce[i%len(nonce)]
	}
	return out
}

// EncryptCachingSHA2Password is the client side of full authentication
// without TLS: RSA-OAEP (SHA-1) of (password + NUL) XOR nonce with the
// server's public key (PEM, as received after CachingSHA2RequestPublicKey).
func EncryptCachingSHA2Password(password, nonce, publicKeyPEM []byte) ([]byte, error) {
	if len(nonce) == 0 {
		return nil, fmt.Errorf("%w: empty nonce", ErrMalformed)
	}
	pub, err := ParseRSAPublicKeyPEM(publicKeyPEM)
	if err != nil {
		return nil, err
	}
	plain := xorNonce(CachingSHA2CleartextPassword(password), nonce)
	out, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub, plain, nil)
	if err != nil {
		return nil, fmt.Errorf("encrypt caching_sha2 password: %w", err)
	}
	return out, nil
}

// DecryptCachingSHA2Password is the server side of full authentication
// without TLS: it decrypts the client's RSA-OAEP payload and removes the
// nonce mask and the trailing NUL, returning the password.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func DecryptCachingSHA2Password(ciphertext, nonce []byte, key *rsa.PrivateKey) ([]byte, error) {
	if len(nonce) == 0 {
		return nil, fmt.Errorf("%w: empty nonce", ErrMalformed)
	}
	plain, err := rsa.DecryptOAEP(sha1.New(), nil, key, ciphertext, nil)
	if err != nil {
		return nil, fmt.Errorf("decrypt caching_sha2 password: %w", err)
	}
	pw := xorNonce(plain, nonce)
	if i := bytes.IndexByte(pw, 0); i >= 0 {
		pw = pw[:i]
	} else {
		return nil, fmt.Errorf("%w: decrypted password lacks NUL terminator", ErrMalformed)
	}
	return pw, nil
}

// ParseRSAPublicKeyPEM decodes a PEM public key in either PKIX ("PUBLIC
// KEY", what MySQL sends) or PKCS#1 ("RSA PUBLIC KEY") form.
func ParseRSAPublicKeyPEM(data []byte) (*rsa.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block in public key", ErrMalformed)
	}
	if block.Type == "RSA PUBLIC KEY" {
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse RSA public key: %w", err)
		}
		return k, nil
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	rk, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: public key is %T, not RSA", ErrMalformed, k)
	}
	return rk, nil
}

// MarshalRSAPublicKeyPEM encodes a public key as the PKIX PEM block a server
// sends in reply to CachingSHA2RequestPublicKey.
//
// Kept although the proxy does not call it: the server side, for internal/mysqlfake (the test double).
func MarshalRSAPublicKeyPEM(pub *rsa.PublicKey) ([]byte, error) {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("marshal public key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), nil
}

// NewScramble fills a fresh 20-byte nonce for a greeting. The bytes avoid NUL
// and '$' as servers do, because some clients treat the nonce as a C string.
func NewScramble() ([]byte, error) {
	b := make([]byte, ScrambleLength)
	if _, err := rand.Read(b); err != nil {
		return nil, fmt.Errorf("generate scramble: %w", err)
	}
	for i := range b {
		b[i] = b[i]%94 + 33 // printable, no space
		if b[i] == '$' {
			b[i] = '%'
		}
	}
	return b, nil
}
