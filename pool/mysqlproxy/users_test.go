package mysqlproxy

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scalestack/scalestack/mysqlwire"
)

func TestParseUsers(t *testing.T) {
	good := UserLine("alice", []byte("pw")) + "\n# comment\n\n" + UserLine("bob", nil) + "\n" +
		"carol:native=*" + strings.ToUpper(strings.Split(UserLine("c", []byte("x")), "=")[1][:40]) + "\n"
	users, err := ParseUsers(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(users) != 3 || users["bob"].NoPassword != true || users["alice"].SHA2 == nil || users["carol"].SHA2 != nil {
		t.Fatalf("users %+v", users)
	}
	nonce := []byte("01234567890123456789")
	if _, err := mysqlwire.VerifyNativePassword(users["alice"].Native, nonce, mysqlwire.NativePasswordScramble([]byte("pw"), nonce)); err != nil {
		t.Fatalf("native hash does not verify: %v", err)
	}
	if err := mysqlwire.VerifyCachingSHA2(users["alice"].SHA2, nonce, mysqlwire.CachingSHA2Scramble([]byte("pw"), nonce)); err != nil {
		t.Fatalf("sha2 hash does not verify: %v", err)
	}
	for _, u := range users {
		if u.Admin {
			t.Fatalf("%s is admin without the field", u.Name)
		}
	}
	admins, err := ParseUsers(strings.NewReader(UserLine("ops", []byte("pw")) + ":admin\nroot2:admin:native=\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !admins["ops"].Admin || !admins["root2"].Admin || !admins["root2"].NoPassword || admins["ops"].Native == nil {
		t.Fatalf("admin accounts %+v %+v", admins["ops"], admins["root2"])
	}
	if strings.Contains(UserLine("alice", []byte("pw")), "pw:") {
		t.Fatal("the line contains the password")
	}
	bad := []string{
		"alice",                                 // no native field
		"alice:native=zz",                       // not hex
		"alice:native=abcd",                     // wrong length
		"alice:sha2=" + strings.Repeat("a", 64), // no native
		"alice:native=:sha2=" + strings.Repeat("a", 64),
		"alice:native=" + strings.Repeat("a", 40) + ":sha2=abc",
		"alice:native=" + strings.Repeat("a", 40) + ":other=1",
		":native=",
		UserLine("dup", nil) + "\n" + UserLine("dup", nil),
		// A repeated field must not let the last one win: this line
		// once made the account passwordless.
		"dup:native=" + strings.Repeat("a", 40) + ":native=",
		"dup:native=:native=" + strings.Repeat("a", 40),
		"dup:native=" + strings.Repeat("a", 40) + ":sha2=:sha2=",
		"dup:native=:admin:admin",
		"alice:native=:admin=1",   // admin takes no value
		"alice:native=:admin=",    // not even an empty one
		"alice:native=:superuser", // unknown field without a value
		"alice:native=:",          // empty field
		"alice:native=::admin",
		"alice:native=:Admin", // fields are case sensitive
		// The fields of accounts and tenants: none may be empty,
		// repeated, or take a value it does not have.
		"alice:native=:tenant=",
		"alice:native=:tenant=a b",
		"alice:native=:tenant=a/b",
		"alice:native=:tenant=" + strings.Repeat("t", 65),
		"alice:native=:tenant=a:tenant=b",
		"alice:native=:backend=",
		"alice:native=:backend=x:backend=y",
		"alice:native=:backend=a b",
		"alice:native=:backend-password-file=",
		"alice:native=:backend-password-file=a:backend-password-file=b",
		"alice:native=:require-tls=1",
		"alice:native=:require-tls=",
		"alice:native=:require-tls:require-tls",
	}
	for _, b := range bad {
		if _, err := ParseUsers(strings.NewReader(b)); err == nil {
			t.Errorf("%q: no error", b)
		}
	}
}

// TestParseUsersAccountFields: tenant, backend, backend-password-file and
// require-tls are read into the account, and an account without them is
// its own tenant and logs in to the server as itself.
func TestParseUsersAccountFields(t *testing.T) {
	text := UserLine("alice", []byte("pw")) + ":tenant=shop-eu.1:backend=app_rw:backend-password-file=app.pw:require-tls:admin\n" +
		UserLine("bob", []byte("pw")) + "\n"
	users, err := ParseUsers(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	a, b := users["alice"], users["bob"]
	if a.Tenant != "shop-eu.1" || a.TenantName() != "shop-eu.1" || a.Backend != "app_rw" || a.BackendAccount() != "app_rw" ||
		a.BackendPasswordFile != "app.pw" || !a.RequireTLS || !a.Admin {
		t.Errorf("alice = %+v", a)
	}
	if a.BackendPassword != nil {
		t.Error("ParseUsers read a password file; only LoadUsers may")
	}
	if b.Tenant != "" || b.TenantName() != "bob" || b.BackendAccount() != "bob" || b.RequireTLS || b.BackendPasswordFile != "" {
		t.Errorf("bob = %+v", b)
	}
}

// TestLoadUsersBackendPasswordFile: a relative backend-password-file is
// read from the users file's folder; an absolute one as it is; a missing
// file is an error naming the account.
func TestLoadUsersBackendPasswordFile(t *testing.T) {
	dir := t.TempDir()
	abs := filepath.Join(t.TempDir(), "other.pw")
	for path, content := range map[string]string{filepath.Join(dir, "app.pw"): "s3cret\r\nignored\n", abs: "other"} {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	users := filepath.Join(dir, "users")
	text := UserLine("alice", []byte("pw")) + ":backend=app:backend-password-file=app.pw\n" +
		UserLine("bob", []byte("pw")) + ":backend-password-file=" + abs + "\n"
	if err := os.WriteFile(users, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := LoadUsers(users)
	if err != nil {
		t.Fatal(err)
	}
	if string(u["alice"].BackendPassword) != "s3cret" || string(u["bob"].BackendPassword) != "other" {
		t.Errorf("backend passwords %q %q", u["alice"].BackendPassword, u["bob"].BackendPassword)
	}
	if err := os.WriteFile(users, []byte(UserLine("carol", nil)+":backend-password-file=missing.pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadUsers(users); err == nil || !strings.Contains(err.Error(), `"carol"`) || !strings.Contains(err.Error(), "missing.pw") {
		t.Errorf("missing backend password file: %v", err)
	}
}

// TestUserStatsPerLoop: each loop writes its own counters of an account;
// a scrape sums them, and a reload keeps them for names that stay.
func TestUserStatsPerLoop(t *testing.T) {
	var r userStatsRegistry
	u, err := ParseUsers(strings.NewReader(UserLine("app", []byte("pw")) + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	r.adopt(u)
	r.setLoops(3)
	st := u["app"].stats
	if len(st.loops) != 3 {
		t.Fatalf("%d counter sets after setLoops(3)", len(st.loops))
	}
	for loop, n := range []int{2, 0, 5} {
		for i := 0; i < n; i++ {
			st.on(loop).commands.Add(1)
		}
		st.on(loop).connections.Add(1)
	}
	st.on(1).connections.Add(-1)
	got := st.snapshot("app")
	if got.Commands != 7 || got.Connections != 2 {
		t.Fatalf("snapshot %+v, want 7 commands and 2 connections", got)
	}
	again, _ := ParseUsers(strings.NewReader(UserLine("app", []byte("other")) + "\n"))
	r.adopt(again)
	if again["app"].stats != st {
		t.Fatal("a reload lost the counters of an account it kept")
	}
}

// TestSecretFilesMustNotBeWritableByOthers: the users file and a password
// file that the group or everyone may write are refused, with a message
// naming the file and its mode; readable by the group is fine.
func TestSecretFilesMustNotBeWritableByOthers(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	password := filepath.Join(dir, "password")
	if err := os.WriteFile(users, []byte(UserLine("alice", []byte("pw"))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(password, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A backend-password-file named by the users file is a secret too.
	mapped := filepath.Join(dir, "mapped-users")
	backendPassword := filepath.Join(dir, "backend.pw")
	if err := os.WriteFile(mapped, []byte(UserLine("bob", []byte("pw"))+":backend=app:backend-password-file=backend.pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(backendPassword, []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	load := map[string]func() error{
		users:           func() error { _, err := LoadUsers(users); return err },
		password:        func() error { _, err := ReadPasswordFile(password); return err },
		backendPassword: func() error { _, err := LoadUsers(mapped); return err },
	}
	for _, c := range []struct {
		mode os.FileMode
		ok   bool
	}{
		{0o600, true}, {0o400, true}, {0o640, true}, {0o644, true},
		{0o660, false}, {0o620, false}, {0o602, false}, {0o666, false}, {0o777, false},
	} {
		for path, fn := range load {
			if err := os.Chmod(path, c.mode); err != nil {
				t.Fatal(err)
			}
			err := fn()
			if c.ok {
				if err != nil {
					t.Errorf("%s with mode %04o: %v", path, c.mode, err)
				}
				continue
			}
			want := fmt.Sprintf("%04o", c.mode)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "writable") {
				t.Errorf("%s with mode %04o: error %v, want one naming the file and mode %s", path, c.mode, err, want)
			}
		}
	}
}
