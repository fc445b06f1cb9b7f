package mysqlproxy

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/scalestack/scalestack/mysqlwire"
)

// User is one client account of the proxy: stored secrets only, never a
// password.
type User struct {
	Name string
	// Native is SHA1(SHA1(password)) for mysql_native_password; empty
	// means the account has no password.
	Native []byte
	// SHA2 is SHA256(SHA256(password)) for the caching_sha2_password fast
	// path; nil when the line had none (clients are switched to native).
	SHA2 []byte
	// NoPassword is set for accounts with an empty password.
	NoPassword bool
	// Admin is set by the field `admin`: the account may run statements
	// that act on the whole server or on the shared service account (SET
	// PASSWORD, GRANT, SET GLOBAL, FLUSH, SHUTDOWN...) and KILL sessions
	// of other accounts. Without it the proxy refuses them to a session
	// running as a shared account (the service account, a backend=
	// mapping: see adminStatements and session.refuses).
	Admin bool
	// Tenant is the field `tenant=NAME`: the group of accounts that shares
	// one tenant's scheduling rules. Empty means the account is a tenant of
	// its own (TenantName gives the name to use).
	Tenant string
	// Backend is the field `backend=NAME`: the account on the server that
	// this client's backend connections log in as, instead of its own.
	// Empty means the client's own account.
	Backend string
	// BackendPasswordFile is the field `backend-password-file=PATH` as
	// written (relative paths are relative to the users file's folder);
	// BackendPassword is that file's first line, read by LoadUsers. It is
	// a live secret: never logged, never shown in /status.
	BackendPasswordFile string
	BackendPassword     []byte
	// RequireTLS is the field `require-tls`: the account may log in only
	// over TLS, as for an account created with REQUIRE SSL.
	RequireTLS bool

	// stats are the account's counters, kept across reloads of the users
	// file (set when the proxy adopts the Users).
	stats *UserStats

	// ident is the server account the account's sessions run as, set at
	// its first login (identityOf).
	ident userIdentityCache
}

// TenantName is the account's tenant: its tenant= field, or its own name.
func (u *User) TenantName() string {
	if u.Tenant != "" {
		return u.Tenant
	}
	return u.Name
}

// BackendAccount is the account on the server that the client's backend
// connections log in as: its backend= field, or its own name.
func (u *User) BackendAccount() string {
	if u.Backend != "" {
		return u.Backend
	}
	return u.Name
}

// Users maps account names to their secrets.
type Users map[string]*User

// UserLine formats the users-file line for name and password (what
// `scalestack passwd` prints).
func UserLine(name string, password []byte) string {
	if len(password) == 0 {
		return name + ":native=:sha2="
	}
	return name + ":native=" + hex.EncodeToString(mysqlwire.NativePasswordHash(password)) +
		":sha2=" + hex.EncodeToString(mysqlwire.CachingSHA2Hash(password))
}

// LoadUsers reads a users file (see the package documentation).
func LoadUsers(path string) (Users, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("users file: %w", err)
	}
	defer f.Close()
	if err := checkSecretFile(f, "users file"); err != nil {
		return nil, err
	}
	u, err := ParseUsers(f)
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	if err := u.readBackendPasswords(filepath.Dir(path)); err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return u, nil
}

// readBackendPasswords reads each backend-password-file (relative to dir),
// with the same refusal of group- or world-writable files as the users
// file itself: whoever can write it decides what the proxy logs in with.
func (us Users) readBackendPasswords(dir string) error {
	for _, u := range us {
		if u.BackendPasswordFile == "" {
			continue
		}
		path := u.BackendPasswordFile
		if !filepath.IsAbs(path) {
			path = filepath.Join(dir, path)
		}
		pw, err := ReadPasswordFile(path)
		if err != nil {
			return fmt.Errorf("user %q: backend-password-file: %w", u.Name, err)
		}
		u.BackendPassword = pw
	}
	return nil
}

// ParseUsers parses users-file text.
func ParseUsers(r io.Reader) (Users, error) {
	users := Users{}
	sc := bufio.NewScanner(r)
	lineNo := 0
	for sc.Scan() {
		lineNo++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Split(line, ":")
		name := fields[0]
		if name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("line %d: bad user name %q", lineNo, name)
		}
		if _, dup := users[name]; dup {
			return nil, fmt.Errorf("line %d: user %q listed twice", lineNo, name)
		}
		u := &User{Name: name}
		sawNative := false
		// A field given twice is an error, not "the last one wins": a
		// stray "native=" after the hash would silently make the account
		// passwordless.
		seen := make(map[string]bool, len(fields))
		for _, f := range fields[1:] {
			key, val, hasValue := strings.Cut(f, "=")
			if seen[key] {
				return nil, fmt.Errorf("line %d: field %q given twice", lineNo, key)
			}
			seen[key] = true
			if key == "admin" || key == "require-tls" {
				if hasValue {
					return nil, fmt.Errorf("line %d: field %s takes no value (write %q, not %q)", lineNo, key, key, f)
				}
				if key == "admin" {
					u.Admin = true
				} else {
					u.RequireTLS = true
				}
				continue
			}
			if !hasValue {
				return nil, fmt.Errorf("line %d: field %q is not key=value", lineNo, f)
			}
			// Only the hashes may be empty (an account without a
			// password); an empty name or path is a mistake.
			if val == "" && key != "native" && key != "sha2" {
				return nil, fmt.Errorf("line %d: field %s is empty", lineNo, key)
			}
			switch key {
			case "native":
				sawNative = true
				if val == "" {
					u.NoPassword = true
					continue
				}
				var b []byte
				var err error
				if val[0] == '*' {
					b, err = mysqlwire.ParseNativePasswordHashText(val)
				} else {
					b, err = hex.DecodeString(val)
				}
				if err != nil || len(b) != 20 {
					return nil, fmt.Errorf("line %d: native hash must be 40 hex digits (SHA1(SHA1(password)))", lineNo)
				}
				u.Native = b
			case "sha2":
				if val == "" {
					continue
				}
				b, err := hex.DecodeString(val)
				if err != nil || len(b) != 32 {
					return nil, fmt.Errorf("line %d: sha2 hash must be 64 hex digits (SHA256(SHA256(password)))", lineNo)
				}
				u.SHA2 = b
			case "tenant":
				if !validTenantName(val) {
					return nil, fmt.Errorf("line %d: tenant %q: use letters, digits, '_', '-' and '.' only (at most 64)", lineNo, val)
				}
				u.Tenant = val
			case "backend":
				if strings.ContainsAny(val, " \t") || len(val) > 80 {
					return nil, fmt.Errorf("line %d: bad backend account name %q", lineNo, val)
				}
				u.Backend = val
			case "backend-password-file":
				u.BackendPasswordFile = val
			default:
				return nil, fmt.Errorf("line %d: unknown field %q (known: %s)", lineNo, key, strings.Join(userFields, ", "))
			}
		}
		if !sawNative {
			return nil, fmt.Errorf("line %d: user %q has no native= field", lineNo, name)
		}
		if u.NoPassword && u.SHA2 != nil {
			return nil, fmt.Errorf("line %d: user %q has an empty native hash but a sha2 hash", lineNo, name)
		}
		users[name] = u
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return users, nil
}

// userFields are the users file's fields, as error messages list them.
var userFields = []string{"native", "sha2", "admin", "tenant", "backend", "backend-password-file", "require-tls"}

// validTenantName reports whether name can be a tenant: it appears in
// metric labels, config table names ([tenants.NAME]) and /status.
func validTenantName(name string) bool {
	if name == "" || len(name) > 64 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ReadPasswordFile returns a file's first line (a password), without the
// line ending.
func ReadPasswordFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	if err := checkSecretFile(f, "password file"); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("password file %s: %w", path, err)
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return bytes.TrimRight(b, "\r"), nil
}

// checkSecretFile refuses a secret file (the users file, a password file)
// that accounts other than its owner may write: whoever can write the
// users file decides who logs in, and whoever can write a password file
// decides what the proxy logs in with. It checks the open file (after
// symlinks), so the file read is the file checked. Readable by the group is
// allowed (a deployment may share it with a group), writable is not.
func checkSecretFile(f *os.File, what string) error {
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, f.Name(), err)
	}
	if mode := st.Mode().Perm(); mode&0o022 != 0 {
		return fmt.Errorf("%s %s has mode %04o: it is group- or world-writable, so other accounts could rewrite it; refused (chmod go-w %s)",
			what, f.Name(), mode, f.Name())
	}
	return nil
}
