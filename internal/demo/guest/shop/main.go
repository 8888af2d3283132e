// Command shop is the demo's web machine (the seed's IIS VM): PID 1 of its
// machine, it serves a small shop on :80 whose orders live in PostgreSQL on
// the database machine. The database is host .10 of the shop's own /24, so
// the same disk works at the primary site and, with its recovery address,
// at the recovery site.
package main

import (
	"database/sql"
	"fmt"
	"html"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

func main() {
	go reap()
	db, err := sql.Open("pgx", dsn())
	if err != nil {
		log.Fatal(err)
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxLifetime(30 * time.Second)
	s := &shop{db: db}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", s.index)
	mux.HandleFunc("POST /order", s.order)
	mux.HandleFunc("GET /orders", s.orders)
	srv := &http.Server{Addr: ":80", Handler: mux, ReadTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	go func() {
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM, syscall.SIGINT)
		<-c
		srv.Close()
		db.Close()
		os.Exit(0)
	}()
	log.Printf("shop: database %s", dsn())
	log.Fatal(srv.ListenAndServe())
}

// reap collects orphans: this process is PID 1 of its machine.
func reap() {
	for {
		var ws syscall.WaitStatus
		if _, err := syscall.Wait4(-1, &ws, 0, nil); err != nil {
			time.Sleep(time.Second)
		}
	}
}

func dsn() string {
	host := "127.0.0.1"
	if ifs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range ifs {
			if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && !n.IP.IsLoopback() {
				ip := n.IP.To4()
				host = fmt.Sprintf("%d.%d.%d.10", ip[0], ip[1], ip[2])
				break
			}
		}
	}
	return "host=" + host + " user=postgres dbname=postgres sslmode=disable connect_timeout=3"
}

type shop struct{ db *sql.DB }

const schema = `CREATE TABLE IF NOT EXISTS orders (id text PRIMARY KEY, customer text NOT NULL, placed timestamptz NOT NULL DEFAULT now())`

// index is the shop's page; it answers 200 only when the database does, so
// health checks and DNS monitors see the whole application.
func (s *shop) index(w http.ResponseWriter, r *http.Request) {
	var n int
	if err := s.db.QueryRowContext(r.Context(), "SELECT count(*) FROM orders").Scan(&n); err != nil {
		if _, err2 := s.db.ExecContext(r.Context(), schema); err2 != nil {
			http.Error(w, "database unavailable: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
	}
	host, _ := os.Hostname()
	fmt.Fprintf(w, "<html><body><h1>Haven demo shop</h1><p>served by %s, %d orders</p>"+
		"<form method=post action=/order><input name=id><input name=customer><button>Order</button></form></body></html>\n",
		html.EscapeString(host), n)
}

// order stores one order and answers only after PostgreSQL committed it:
// an acknowledged order is a durable one.
func (s *shop) order(w http.ResponseWriter, r *http.Request) {
	id, cust := r.FormValue("id"), r.FormValue("customer")
	if id == "" || len(id) > 100 || strings.ContainsAny(id, "\n\r") {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	_, err := s.db.ExecContext(r.Context(), "INSERT INTO orders (id, customer) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", id, cust)
	if err != nil && strings.Contains(err.Error(), "does not exist") {
		if _, err = s.db.ExecContext(r.Context(), schema); err == nil {
			_, err = s.db.ExecContext(r.Context(), "INSERT INTO orders (id, customer) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING", id, cust)
		}
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "ok %s\n", id)
}

// orders lists every order id, one a line (what the demo and its test
// compare with the orders customers saw acknowledged).
func (s *shop) orders(w http.ResponseWriter, r *http.Request) {
	rows, err := s.db.QueryContext(r.Context(), "SELECT id FROM orders ORDER BY placed, id")
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		b.WriteString(id + "\n")
	}
	if err := rows.Err(); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte(b.String()))
}
