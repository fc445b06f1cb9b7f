package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scalestack/scalestack/pool/mysqlproxy"
)

func TestPasswd(t *testing.T) {
	cases := []struct {
		args    []string
		stdin   string
		wantErr bool
		admin   bool
	}{
		{[]string{"alice"}, "s3cret\n", false, false},
		{[]string{"bob"}, "", false, false},
		{[]string{"--admin", "ops"}, "s3cret\n", false, true},
		{[]string{}, "x\n", true, false},
		{[]string{"a:b"}, "x\n", true, false},
		{[]string{"a", "b"}, "x\n", true, false},
		{[]string{"--tenant", "shop", "--backend", "app", "--backend-password-file", "app.pw", "--require-tls", "carol"}, "s3cret\n", false, false},
		{[]string{"--tenant", "no spaces", "carol"}, "x\n", true, false},
		{[]string{"--backend-password-file", "a:b", "carol"}, "x\n", true, false},
	}
	for _, c := range cases {
		var out, errOut bytes.Buffer
		err := passwd(c.args, strings.NewReader(c.stdin), &out, &errOut)
		if (err != nil) != c.wantErr {
			t.Fatalf("%v: err %v", c.args, err)
		}
		if err != nil {
			continue
		}
		line := strings.TrimSpace(out.String())
		if strings.Contains(line, "s3cret") {
			t.Fatalf("the line holds the password: %s", line)
		}
		users, err := mysqlproxy.ParseUsers(strings.NewReader(line))
		if err != nil {
			t.Fatalf("%q does not parse: %v", line, err)
		}
		u := users[c.args[len(c.args)-1]]
		if u == nil || u.NoPassword != (c.stdin == "") || u.Admin != c.admin {
			t.Fatalf("%q: %+v", line, u)
		}
		flag := func(name string) string {
			for i, a := range c.args {
				if a == "--"+name && i+1 < len(c.args) {
					return c.args[i+1]
				}
			}
			return ""
		}
		if u.Tenant != flag("tenant") || u.Backend != flag("backend") || u.BackendPasswordFile != flag("backend-password-file") ||
			u.RequireTLS != strings.Contains(strings.Join(c.args, " "), "--require-tls") {
			t.Fatalf("%q: fields %+v", line, u)
		}
	}
}

func TestMySQLProxyFlags(t *testing.T) {
	dir := t.TempDir()
	users := filepath.Join(dir, "users")
	if err := os.WriteFile(users, []byte(mysqlproxy.UserLine("alice", []byte("pw"))+":tenant=shop:require-tls\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFields := filepath.Join(dir, "bad-users")
	if err := os.WriteFile(badFields, []byte(mysqlproxy.UserLine("alice", []byte("pw"))+":tenant=\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	mapped := filepath.Join(dir, "mapped-users")
	if err := os.WriteFile(mapped, []byte(mysqlproxy.UserLine("alice", []byte("pw"))+":backend=app\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", users}, ""},
		{[]string{"--backend-user", "svc", "--users", users}, "required"},
		{[]string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", filepath.Join(dir, "missing")}, "--users"},
		{[]string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", users, "--backend-conns", "0"}, "BackendConns"},
		{[]string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", users, "--login-timeout", "0s"}, "--login-timeout"},
		{[]string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", users, "--backend-password-file", filepath.Join(dir, "nope")}, "password"},
		{[]string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", badFields}, "line 1"},
		{[]string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", mapped}, ""},
		{[]string{"--backend", "127.0.0.1:3306", "--backend-user", "svc", "--users", users, "--backend-identity", "mine"}, "--backend-identity"},
	}
	for _, c := range cases {
		var stderr bytes.Buffer
		_, m, err := parseServerFlags(command{name: "mysqlproxy", flags: mysqlProxyFlags}, c.args, &stderr)
		if c.wantErr == "" {
			if err != nil || m.name != "mysqlproxy" || m.start == nil || m.listen.NewHandler == nil {
				t.Fatalf("%v: %v %+v", c.args, err, m)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.wantErr) {
			t.Fatalf("%v: error %v, want one mentioning %q", c.args, err, c.wantErr)
		}
	}
}
