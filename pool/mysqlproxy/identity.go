package mysqlproxy

import (
	"crypto/sha1" //nolint:gosec // mysql_native_password is SHA1 by definition
	"crypto/subtle"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/scalestack/scalestack/mysqlwire"
	"github.com/scalestack/scalestack/pool"
)

// IdentityMode says which server account a client's statements run as.
type IdentityMode uint8

const (
	// IdentityAccount (the default): a client runs on backend connections
	// logged in as its own account on the server, with that account's
	// grants, or as the account its users-file line maps it to (backend=).
	IdentityAccount IdentityMode = iota
	// IdentityService: every client runs as the service account
	// (Config.User), as before there were identities: for a database
	// that one application uses, whose accounts exist only at the proxy.
	IdentityService
)

// ParseIdentityMode reads "account" or "service".
func ParseIdentityMode(s string) (IdentityMode, error) {
	switch s {
	case "account":
		return IdentityAccount, nil
	case "service":
		return IdentityService, nil
	}
	return 0, fmt.Errorf("want account or service, got %q", s)
}

func (m IdentityMode) String() string {
	if m == IdentityService {
		return "service"
	}
	return "account"
}

// identity is a server account a backend connection is logged in as, with
// what the proxy needs to log in as it: SHA1(password) (enough to answer
// any mysql_native_password scramble), and the password itself only where
// the proxy was given it (the service account, a backend-password-file),
// which caching_sha2_password's full authentication needs.
//
// A derived identity holds a live secret: SHA1(password) logs in as the
// account wherever it uses mysql_native_password. It is never logged,
// never exported (String prints the name only), and lives only in this
// process: a process that takes over in a zero-downtime upgrade derives
// it again at each account's next login.
//
// Identities are immutable once published (registered under the lock,
// then reached through a session or a backend), so every loop may read
// them.
type identity struct {
	// id is the pool.Class account number: 0 for the service account.
	id   uint32
	name string
	// stage1 is SHA1(password); nil for an account without a password.
	stage1 []byte
	// password is the plain password where the proxy has it (nil for a
	// derived identity).
	password []byte
	// refusedAt is when (monoNow) the server last refused a
	// COM_CHANGE_USER to the account (0: never); the only field that
	// changes, an atomic every loop reads.
	refusedAt atomic.Int64
}

// refusalMemory is how long a login of an account the server refused is
// refused at the proxy without asking the server again: a client retrying
// in a loop costs a backend reconnect at most this often.
const refusalMemory = time.Second

// refusedRecently reports whether the server refused the account less
// than refusalMemory ago.
func (id *identity) refusedRecently() bool {
	at := id.refusedAt.Load()
	return at != 0 && monoNow()-at < int64(refusalMemory)
}

// String names the account, never its secret.
func (id *identity) String() string { return id.name }

// GoString is String for %#v, which would otherwise print the fields.
func (id *identity) GoString() string { return id.name }

// class is the pool class of backends logged in as id.
func (id *identity) class() pool.Class { return pool.Class{Account: id.id} }

// errNoPassword: a server asked a derived identity for what only the
// password gives (caching_sha2_password's full authentication).
var errNoPassword = errors.New("the server asks for caching_sha2_password full authentication, which needs the password; " +
	"the proxy derives only SHA1(password) from a client's login: map the account to a backend account with backend= and backend-password-file=")

// authResponse answers plugin's challenge nonce as id.
func (id *identity) authResponse(plugin string, nonce []byte) ([]byte, error) {
	switch plugin {
	case mysqlwire.AuthCachingSHA2:
		if id.password == nil && id.stage1 != nil {
			// The fast path needs SHA256(password), which the proxy
			// has only with the password.
			return nil, errNoPassword
		}
		return mysqlwire.CachingSHA2Scramble(id.password, nonce), nil
	default:
		if len(id.stage1) == 0 {
			return nil, nil // no password: an empty answer
		}
		return mysqlwire.NativeScrambleFromStage1(id.stage1, nonce), nil
	}
}

// identities registers the identities backends log in as: one per server
// account and SHA1(password), so that every client of an account (and
// every account mapped to the same backend account, and a client that is
// the service account itself) shares backends logged in as it. It is consulted once per account and users file (the result is
// cached on the User), never per command.
type identities struct {
	mu     sync.Mutex
	byKey  map[string]*identity
	nextID uint32
	// service is the service account (Config.User), id 0.
	service *identity
}

func newIdentities(user string, password []byte) *identities {
	svc := &identity{id: 0, name: user, password: password}
	if len(password) > 0 {
		s1 := sha1.Sum(password) //nolint:gosec // mysql_native_password
		svc.stage1 = s1[:]
	}
	r := &identities{byKey: map[string]*identity{}, nextID: 1, service: svc}
	r.byKey[identityKey(user, svc.stage1)] = svc
	return r
}

// stage1Of is SHA1(password), what a derived identity logs in with (nil
// for an empty password, as VerifyNativePassword gives for one).
func stage1Of(password []byte) []byte {
	if len(password) == 0 {
		return nil
	}
	s1 := sha1.Sum(password) //nolint:gosec // mysql_native_password
	return s1[:]
}

func identityKey(name string, stage1 []byte) string {
	return name + "\x00" + string(stage1)
}

// get returns the identity for an account and its SHA1(password),
// registering it the first time (with password, which may be nil: the
// identity first registered keeps its own, so an account first derived and
// later mapped with its password file cannot use caching_sha2_password's
// full authentication until the proxy restarts).
func (r *identities) get(name string, stage1, password []byte) *identity {
	k := identityKey(name, stage1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if id := r.byKey[k]; id != nil {
		return id
	}
	id := &identity{id: r.nextID, name: name, stage1: stage1, password: password}
	r.nextID++
	r.byKey[k] = id
	return id
}

// userIdentity is what a User's logins run as, cached on the User.
type userIdentity struct {
	id *identity
	// shared: other accounts (or every client, in service mode) may run
	// as the same server account, so what the session does to that
	// account acts for them too (see session.mayAdmin).
	shared bool
}

// identityOf returns the identity u's sessions run as. stage1 is
// SHA1(password) from the login that just succeeded (nil without a
// password), used when u runs as its own account.
func (p *Proxy) identityOf(u *User, stage1 []byte) *userIdentity {
	if ui := u.ident.Load(); ui != nil {
		// SHA1 of one stored hash's preimages is one value: the
		// identity derived at the first login holds for the file's
		// line.
		return ui
	}
	var ui userIdentity
	switch {
	case u.Backend != "":
		ui = p.mappedIdentity(u)
	case p.cfg.Identity == IdentityService:
		ui = userIdentity{id: p.idents.service, shared: true}
	default:
		ui = userIdentity{id: p.idents.get(u.Name, stage1, nil)}
	}
	u.ident.CompareAndSwap(nil, &ui)
	return u.ident.Load()
}

// mappedIdentity is the backend account u maps to with backend= (and
// backend-password-file=, or the service account's password when it
// names the service account without one).
func (p *Proxy) mappedIdentity(u *User) userIdentity {
	if u.Backend == p.cfg.User && u.BackendPassword == nil {
		return userIdentity{id: p.idents.service, shared: true}
	}
	var stage1 []byte
	if len(u.BackendPassword) > 0 {
		s1 := sha1.Sum(u.BackendPassword) //nolint:gosec // mysql_native_password
		stage1 = s1[:]
	}
	return userIdentity{id: p.idents.get(u.Backend, stage1, u.BackendPassword), shared: true}
}

// userIdentityCache is embedded in User: the identity its logins run as,
// set at the first successful login (an atomic: logins on every loop read
// it).
type userIdentityCache = atomic.Pointer[userIdentity]

// embedIdentity is the server account an embedded request of u runs as:
// the one its clients run as once any has logged in (or its backend=
// mapping, or the service account in service mode); else, in account mode,
// its own account derived from password when the caller has it and it
// matches the users file. Without either it cannot run: the proxy has no
// way to log in as the account, and running it as the service account
// would give it rights the server does not.
func (p *Proxy) embedIdentity(u *User, password []byte) (*identity, error) {
	if ui := u.ident.Load(); ui != nil {
		return ui.id, nil
	}
	if u.Backend != "" || p.cfg.Identity == IdentityService || u.NoPassword {
		return p.identityOf(u, nil).id, nil
	}
	if len(password) > 0 {
		s1 := stage1Of(password)
		if subtle.ConstantTimeCompare(sha1Sum(s1), u.Native) == 1 {
			return p.identityOf(u, s1).id, nil
		}
	}
	return nil, proxySQLError(errIdentityUnusable, u.Name,
		"the proxy cannot log in as it yet (no client of it has logged in since the proxy started, and its users-file line has no backend=)")
}

func sha1Sum(b []byte) []byte {
	s := sha1.Sum(b) //nolint:gosec // mysql_native_password
	return s[:]
}
