// Command chquery runs one statement against a ClickHouse HTTP endpoint with
// clickhouse-go, connected the way Grafana's ClickHouse data source connects
// over HTTP, and prints the result as JSON lines on stdout:
//
//	{"columns": [{"name": "n", "type": "UInt64"}, ...]}
//	{"row": [1, ...]}            one per row
//	{"rows": 1}
//
// With -exec the statement runs with conn.Exec and only {"rows": 0} is
// printed. With -ping only conn.Ping runs, then {"ping": true}.
// On any error it prints {"error": "...", "code": N} (N is the ClickHouse
// exception code, 0 when the error is not a server exception; "status" is the
// HTTP status when the server answered with a non-200) and exits 1.
//
// Values: integers up to 64 bits are exact JSON numbers, wider integers and
// decimals are strings, times are RFC 3339 strings with a numeric offset,
// NaN/Inf are the strings "nan", "inf", "-inf".
package main

import (
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/big"
	"net"
	"os"
	"reflect"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/shopspring/decimal"
)

// timeLayout is RFC 3339 with nanoseconds (trailing zeros dropped) and a
// numeric offset, never "Z".
const timeLayout = "2006-01-02T15:04:05.999999999-07:00"

type pairs []string

func (p *pairs) String() string { return strings.Join(*p, ",") }

func (p *pairs) Set(v string) error {
	if !strings.Contains(v, "=") {
		return fmt.Errorf("%q is not name=value", v)
	}
	*p = append(*p, v)
	return nil
}

func split(v string) (string, string) {
	name, value, _ := strings.Cut(v, "=")
	return name, value
}

var out = json.NewEncoder(os.Stdout)

func emit(v any) {
	if err := out.Encode(v); err != nil {
		fail(fmt.Errorf("write result: %w", err))
	}
}

func fail(err error) {
	var code int32
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		code = ex.Code
	}
	msg := map[string]any{"error": err.Error(), "code": code}
	var httpErr *clickhouse.HTTPError
	if errors.As(err, &httpErr) {
		msg["status"] = httpErr.StatusCode
	}
	_ = out.Encode(msg)
	os.Exit(1)
}

func compression(name string) (clickhouse.CompressionMethod, error) {
	switch name {
	case "none":
		return clickhouse.CompressionNone, nil
	case "gzip":
		return clickhouse.CompressionGZIP, nil
	case "deflate":
		return clickhouse.CompressionDeflate, nil
	case "br":
		return clickhouse.CompressionBrotli, nil
	case "lz4":
		return clickhouse.CompressionLZ4, nil
	case "zstd":
		return clickhouse.CompressionZSTD, nil
	}
	return 0, fmt.Errorf("unknown compression %q (none, gzip, deflate, br, lz4, zstd)", name)
}

func main() {
	var (
		addr         = flag.String("addr", "127.0.0.1:8123", "host:port of the HTTP interface")
		user         = flag.String("user", "default", "user name")
		password     = flag.String("password", "", "password")
		database     = flag.String("database", "default", "database (sent as ?database=)")
		query        = flag.String("query", "", "SQL to run")
		exec         = flag.Bool("exec", false, "run the statement with conn.Exec (no result set)")
		ping         = flag.Bool("ping", false, "only call conn.Ping")
		comp         = flag.String("compression", "gzip", "HTTP compression: none, gzip (Grafana's choice over HTTP), deflate, br, lz4, zstd")
		dialTimeout  = flag.Duration("dial-timeout", 10*time.Second, "DialTimeout (Grafana's default: 10s)")
		queryTimeout = flag.Duration("query-timeout", 60*time.Second, "ReadTimeout and the query's context deadline (Grafana's default: 60s)")
		settings     pairs
		params       pairs
	)
	flag.Var(&settings, "setting", "name=value ClickHouse setting sent with every request (repeatable)")
	flag.Var(&params, "param", "name=value query parameter for {name:Type} placeholders (repeatable)")
	flag.Parse()
	out.SetEscapeHTML(false)

	method, err := compression(*comp)
	if err != nil {
		fail(err)
	}
	chSettings := clickhouse.Settings{
		// As the Grafana plugin's readonly-user docs require: the driver also
		// sends max_execution_time per query from the context deadline.
		"max_execution_time": int(queryTimeout.Seconds()),
	}
	for _, s := range settings {
		name, value := split(s)
		chSettings[name] = value
	}

	conn, err := clickhouse.Open(&clickhouse.Options{
		Protocol: clickhouse.HTTP,
		Addr:     []string{*addr},
		Auth: clickhouse.Auth{
			Database: *database,
			Username: *user,
			Password: *password,
		},
		ClientInfo: clickhouse.ClientInfo{
			Products: []struct{ Name, Version string }{{Name: "chquery", Version: "1"}},
		},
		Compression: &clickhouse.Compression{Method: method},
		DialTimeout: *dialTimeout,
		ReadTimeout: *queryTimeout,
		Settings:    chSettings,
	})
	if err != nil {
		fail(fmt.Errorf("open: %w", err))
	}
	defer conn.Close()

	ctx, cancel := context.WithTimeout(context.Background(), *queryTimeout)
	defer cancel()

	if *ping {
		if err := conn.Ping(ctx); err != nil {
			fail(err)
		}
		emit(map[string]any{"ping": true})
		return
	}
	if *query == "" {
		fail(errors.New("-query is required (or -ping)"))
	}

	args := make([]any, 0, len(params))
	for _, p := range params {
		name, value := split(p)
		args = append(args, clickhouse.Named(name, value))
	}

	if *exec {
		if err := conn.Exec(ctx, *query, args...); err != nil {
			fail(err)
		}
		emit(map[string]any{"rows": 0})
		return
	}

	rows, err := conn.Query(ctx, *query, args...)
	if err != nil {
		fail(err)
	}
	defer rows.Close()

	types := rows.ColumnTypes()
	columns := make([]map[string]string, len(types))
	for i, t := range types {
		columns[i] = map[string]string{"name": t.Name(), "type": t.DatabaseTypeName()}
	}
	emit(map[string]any{"columns": columns})

	n := 0
	for rows.Next() {
		dest := make([]any, len(types))
		for i, t := range types {
			dest[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := rows.Scan(dest...); err != nil {
			fail(fmt.Errorf("scan row %d: %w", n, err))
		}
		row := make([]any, len(dest))
		for i, d := range dest {
			row[i] = plain(reflect.ValueOf(d).Elem())
		}
		emit(map[string]any{"row": row})
		n++
	}
	if err := rows.Err(); err != nil {
		fail(err)
	}
	emit(map[string]any{"rows": n})
}

var (
	timeType    = reflect.TypeOf(time.Time{})
	decimalType = reflect.TypeOf(decimal.Decimal{})
	bigIntType  = reflect.TypeOf(big.Int{})
	ipType      = reflect.TypeOf(net.IP{})
)

// plain turns a scanned value into something encoding/json writes without
// losing precision.
func plain(v reflect.Value) any {
	if !v.IsValid() {
		return nil
	}
	switch v.Type() {
	case timeType:
		return v.Interface().(time.Time).Format(timeLayout)
	case decimalType:
		return v.Interface().(decimal.Decimal).String()
	case bigIntType:
		b := v.Interface().(big.Int)
		return b.String()
	case ipType:
		if v.IsNil() {
			return nil
		}
		return v.Interface().(net.IP).String()
	}
	if k := v.Kind(); k == reflect.Array || k == reflect.Struct {
		// uuid.UUID, netip.Addr, ...: their own text form.
		if m, ok := v.Interface().(encoding.TextMarshaler); ok {
			if text, err := m.MarshalText(); err == nil {
				return string(text)
			}
		}
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return nil
		}
		return plain(v.Elem())
	case reflect.Float32, reflect.Float64:
		f := v.Float()
		switch {
		case math.IsNaN(f):
			return "nan"
		case math.IsInf(f, 1):
			return "inf"
		case math.IsInf(f, -1):
			return "-inf"
		}
		return f
	case reflect.Slice, reflect.Array:
		if v.Kind() == reflect.Slice && v.IsNil() {
			return []any{}
		}
		list := make([]any, v.Len())
		for i := range list {
			list[i] = plain(v.Index(i))
		}
		return list
	case reflect.Map:
		obj := make(map[string]any, v.Len())
		iter := v.MapRange()
		for iter.Next() {
			key := plain(iter.Key())
			obj[fmt.Sprint(key)] = plain(iter.Value())
		}
		return obj
	case reflect.Struct:
		if s, ok := v.Interface().(fmt.Stringer); ok {
			return s.String()
		}
		obj := make(map[string]any, v.NumField())
		for i := 0; i < v.NumField(); i++ {
			if f := v.Type().Field(i); f.IsExported() {
				obj[f.Name] = plain(v.Field(i))
			}
		}
		return obj
	}
	return v.Interface()
}
