package mysqlfake_test

import (
	"database/sql"
	"fmt"

	"github.com/go-sql-driver/mysql"
	"github.com/scalestack/scalestack/internal/mysqlfake"
	"github.com/scalestack/scalestack/mysqlwire"
)

// A test scripts the statements it needs, runs its client (or the proxy)
// against the double, then asserts on what the server saw. In a test, use
// mysqlfake.Start(t, cfg), which closes the server when the test ends.
func Example() {
	srv, err := mysqlfake.New(mysqlfake.Config{
		Accounts: []mysqlfake.Account{{User: "app", Password: "pw"}},
		Schemas:  []string{"shop"},
	})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	srv.On("SELECT name FROM users WHERE id = 1", mysqlfake.Rows([]string{"name"}, []any{"ada"}))
	srv.OnPrefix("UPDATE stock", mysqlfake.Fail(mysqlwire.ErLockDeadlock, "40001", "Deadlock found when trying to get lock"))

	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.Net, cfg.Addr, cfg.DBName = "app", "pw", "tcp", srv.Addr(), "shop"
	connector, _ := mysql.NewConnector(cfg)
	db := sql.OpenDB(connector)
	defer db.Close()

	var name string
	err = db.QueryRow("SELECT name FROM users WHERE id = 1").Scan(&name)
	fmt.Println(name, err)
	_, err = db.Exec("UPDATE stock SET n = n - 1")
	fmt.Println(err)
	_, err = db.Exec("SET @@session.wait_timeout = 60")
	fmt.Println(err, srv.Conns()[0].State().Vars["wait_timeout"])
	fmt.Println(srv.Queries())
	// Output:
	// ada <nil>
	// Error 1213 (40001): Deadlock found when trying to get lock
	// <nil> 60
	// [SELECT name FROM users WHERE id = 1 UPDATE stock SET n = n - 1 SET @@session.wait_timeout = 60]
}
