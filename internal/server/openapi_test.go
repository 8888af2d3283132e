package server_test

import (
	"bytes"
	"encoding"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/haven-dr/haven/internal/agent"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/machine"
	"github.com/haven-dr/haven/internal/protection"
	"github.com/haven-dr/haven/internal/server"
	"github.com/haven-dr/haven/internal/vnet"
)

// The parts of an OpenAPI 3 document the checks below read.
type apiDoc struct {
	OpenAPI    string                          `yaml:"openapi"`
	Security   []map[string][]string           `yaml:"security"`
	Paths      map[string]map[string]operation `yaml:"paths"`
	Components struct {
		Schemas         map[string]*schema `yaml:"schemas"`
		SecuritySchemes map[string]any     `yaml:"securitySchemes"`
	} `yaml:"components"`
}

type operation struct {
	Security  *[]map[string][]string `yaml:"security"`
	Responses map[string]any         `yaml:"responses"`
}

type schema struct {
	Ref        string             `yaml:"$ref"`
	Type       string             `yaml:"type"`
	Properties map[string]*schema `yaml:"properties"`
	Items      *schema            `yaml:"items"`
	Required   []string           `yaml:"required"`
}

func loadDoc(t *testing.T) (*apiDoc, map[string]any) {
	t.Helper()
	var d apiDoc
	if err := yaml.Unmarshal(server.OpenAPI, &d); err != nil {
		t.Fatalf("openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(d.OpenAPI, "3.") {
		t.Fatalf("openapi: %q, want 3.x", d.OpenAPI)
	}
	var raw map[string]any
	if err := yaml.Unmarshal(server.OpenAPI, &raw); err != nil {
		t.Fatal(err)
	}
	return &d, raw
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// documented lists the document's operations as "METHOD /path".
func documented(d *apiDoc) map[string]operation {
	out := map[string]operation{}
	for path, item := range d.Paths {
		for m, op := range item {
			if slices.Contains(httpMethods, m) {
				out[strings.ToUpper(m)+" "+path] = op
			}
		}
	}
	return out
}

// routeTable is server.Routes() by pattern.
func routeTable() map[string]server.Route {
	out := map[string]server.Route{}
	for _, rt := range server.Routes() {
		out[rt.Pattern] = rt
	}
	return out
}

// TestOpenAPIRoutes: the document describes exactly the route table.
func TestOpenAPIRoutes(t *testing.T) {
	d, _ := loadDoc(t)
	doc := documented(d)
	routes := routeTable()
	for r := range routes {
		if _, ok := doc[r]; !ok {
			t.Errorf("route %s is served but not in openapi.yaml", r)
		}
	}
	for r := range doc {
		if _, ok := routes[r]; !ok {
			t.Errorf("openapi.yaml documents %s, which the server does not serve", r)
		}
	}
}

// TestOpenAPISecurity: each operation's security is what the handler
// enforces, every authenticated one documents its 401, and only the
// status codes the handlers use are documented.
func TestOpenAPISecurity(t *testing.T) {
	d, _ := loadDoc(t)
	for name := range map[string]bool{"adminToken": true, "agentToken": true} {
		if d.Components.SecuritySchemes[name] == nil {
			t.Errorf("security scheme %s is not defined", name)
		}
	}
	used := []string{"200", "202", "204", "400", "401", "403", "404", "409", "412", "413", "500"}
	for route, op := range documented(d) {
		sec := d.Security
		if op.Security != nil {
			sec = *op.Security
		}
		var got []string
		for _, req := range sec {
			for k := range req {
				got = append(got, k)
			}
		}
		want := []string{"adminToken"}
		switch routeTable()[route].Auth {
		case server.AuthNone:
			want = nil
		case server.AuthAgent:
			want = []string{"agentToken"}
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: security %v, want %v", route, got, want)
		}
		if want != nil && op.Responses["401"] == nil {
			t.Errorf("%s: needs a token but documents no 401", route)
		}
		for code := range op.Responses {
			if !slices.Contains(used, code) {
				t.Errorf("%s: documents status %s, which no handler answers", route, code)
			}
		}
	}
}

// TestOpenAPIWellFormed: every $ref points at a defined component, and
// no key is left without a value (what a comma in a flow mapping's plain
// text silently makes: `{description: a, b}` has a key "b").
func TestOpenAPIWellFormed(t *testing.T) {
	_, raw := loadDoc(t)
	var walk func(v any, at string)
	n := 0
	walk = func(v any, at string) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				n++
				if resolve(raw, ref) == nil {
					t.Errorf("%s: $ref %s does not resolve", at, ref)
				}
			}
			for k, x := range v {
				if x == nil {
					t.Errorf("%s/%s: no value", at, k)
				}
				walk(x, at+"/"+k)
			}
		case []any:
			for i, x := range v {
				walk(x, fmt.Sprintf("%s[%d]", at, i))
			}
		}
	}
	walk(raw, "")
	if n == 0 {
		t.Fatal("no $ref found: the walk is broken")
	}
}

func resolve(root map[string]any, ref string) any {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil
	}
	var cur any = root
	for _, k := range strings.Split(p, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[k]
	}
	return cur
}

// goTypes are the Go types the document's object schemas describe.
var goTypes = map[string]reflect.Type{
	"APIError":           reflect.TypeFor[api.Error](),
	"ApplyResult":        reflect.TypeFor[api.ApplyResult](),
	"ConfigResult":       reflect.TypeFor[api.ConfigResult](),
	"SubmitRequest":      reflect.TypeFor[api.SubmitRequest](),
	"Params":             reflect.TypeFor[api.Params](),
	"Job":                reflect.TypeFor[api.Job](),
	"Step":               reflect.TypeFor[api.Step](),
	"LogLine":            reflect.TypeFor[api.LogLine](),
	"PlanState":          reflect.TypeFor[api.PlanState](),
	"Drill":              reflect.TypeFor[api.Drill](),
	"PointView":          reflect.TypeFor[api.PointView](),
	"EncryptionAlert":    reflect.TypeFor[api.EncryptionAlert](),
	"CloseAlert":         reflect.TypeFor[api.CloseAlert](),
	"TrafficProfile":     reflect.TypeFor[api.TrafficProfile](),
	"TrafficEndpoint":    reflect.TypeFor[api.TrafficEndpoint](),
	"AuditEntry":         reflect.TypeFor[api.AuditEntry](),
	"Status":             reflect.TypeFor[api.Status](),
	"MachineStatus":      reflect.TypeFor[api.MachineStatus](),
	"RecoveredMachine":   reflect.TypeFor[api.RecoveredMachine](),
	"MemoryStatus":       reflect.TypeFor[api.MemoryStatus](),
	"AgentStatus":        reflect.TypeFor[api.AgentStatus](),
	"CopyStatus":         reflect.TypeFor[api.CopyStatus](),
	"Alert":              reflect.TypeFor[api.Alert](),
	"DNSServerStatus":    reflect.TypeFor[api.DNSServerStatus](),
	"DNSAnswer":          reflect.TypeFor[api.DNSAnswer](),
	"Report":             reflect.TypeFor[api.Report](),
	"PointReport":        reflect.TypeFor[api.PointReport](),
	"MachineRep":         reflect.TypeFor[api.MachineRep](),
	"DiskReport":         reflect.TypeFor[api.DiskReport](),
	"FailbackDisk":       reflect.TypeFor[api.FailbackDisk](),
	"StepReport":         reflect.TypeFor[api.StepReport](),
	"AgentReport":        reflect.TypeFor[agent.Report](),
	"AgentMachineStatus": reflect.TypeFor[agent.MachineStatus](),
	"AgentPointSummary":  reflect.TypeFor[agent.PointSummary](),
	"ProtectionConfig":   reflect.TypeFor[protection.Config](),
	"Sites":              reflect.TypeFor[protection.Sites](),
	"Networks":           reflect.TypeFor[protection.Networks](),
	"Network":            reflect.TypeFor[vnet.Network](),
	"Mapping":            reflect.TypeFor[vnet.Mapping](),
	"Agent":              reflect.TypeFor[protection.Agent](),
	"Machine":            reflect.TypeFor[protection.Machine](),
	"Disk":               reflect.TypeFor[machine.Disk](),
	"Publish":            reflect.TypeFor[protection.Publish](),
	"NIC":                reflect.TypeFor[protection.NIC](),
	"HealthCheck":        reflect.TypeFor[machine.HealthCheck](),
	"Plan":               reflect.TypeFor[protection.Plan](),
	"DrillSchedule":      reflect.TypeFor[protection.Drill](),
	"SLAReport":          reflect.TypeFor[api.SLAReport](),
	"MachineSLA":         reflect.TypeFor[api.MachineSLA](),
	"DrillSLA":           reflect.TypeFor[api.DrillSLA](),
	"FailoverSLA":        reflect.TypeFor[api.FailoverSLA](),
	"Group":              reflect.TypeFor[protection.Group](),
	"Action":             reflect.TypeFor[protection.Action](),
	"Traffic":            reflect.TypeFor[protection.Traffic](),
	"TrafficServer":      reflect.TypeFor[protection.TrafficServer](),
}

// jsonFields maps a struct's JSON names to its fields' types.
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

var (
	rawJSON = reflect.TypeFor[json.RawMessage]()
	timeT   = reflect.TypeFor[time.Time]()
	textM   = reflect.TypeFor[encoding.TextMarshaler]()
)

// jsonType is the JSON type encoding/json writes for t ("" for any).
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == rawJSON:
		return ""
	case t == timeT, t.Implements(textM), reflect.PointerTo(t).Implements(textM):
		return "string"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	}
	return "object"
}

func deref(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// TestOpenAPISchemasMatchGo: each object schema has exactly the JSON
// fields of its Go type, with the JSON type encoding/json writes, and a
// $ref names the schema of the field's own Go type.
func TestOpenAPISchemasMatchGo(t *testing.T) {
	d, _ := loadDoc(t)
	for name, s := range d.Components.Schemas {
		if s.Properties == nil {
			continue
		}
		gt, ok := goTypes[name]
		if !ok {
			t.Errorf("schema %s: no Go type is mapped to it in goTypes", name)
			continue
		}
		fields := jsonFields(gt)
		for prop, ps := range s.Properties {
			ft, ok := fields[prop]
			if !ok {
				t.Errorf("schema %s: property %q is no JSON field of %v", name, prop, gt)
				continue
			}
			checkProp(t, name+"."+prop, ps, ft)
		}
		for f := range fields {
			if s.Properties[f] == nil {
				t.Errorf("schema %s: %v's JSON field %q is not documented", name, gt, f)
			}
		}
		for _, r := range s.Required {
			if s.Properties[r] == nil {
				t.Errorf("schema %s: required %q is no property", name, r)
			}
		}
	}
}

func checkProp(t *testing.T, at string, ps *schema, ft reflect.Type) {
	t.Helper()
	want := jsonType(ft)
	if ps.Ref != "" {
		target := strings.TrimPrefix(ps.Ref, "#/components/schemas/")
		if want != "" && deref(ft) != goTypes[target] {
			t.Errorf("%s: $ref %s (%v), but the Go field is %v", at, target, goTypes[target], ft)
		}
		return
	}
	if want != "" && ps.Type != want {
		t.Errorf("%s: type %q, but the Go field %v is written as %q", at, ps.Type, ft, want)
	}
	if ps.Items != nil && want == "array" {
		checkProp(t, at+"[]", ps.Items, deref(ft).Elem())
	}
}

// TestOpenAPIServed: the server serves its own document, to the admin.
func TestOpenAPIServed(t *testing.T) {
	e := newEnv(t, nil)
	r := e.start(t)
	a := r.admin(t, "GET", "/v1/openapi.yaml", nil)
	if a.status != http.StatusOK || !bytes.Equal(a.body, server.OpenAPI) {
		t.Fatalf("GET /v1/openapi.yaml: %d, %d bytes; want 200 and the embedded document", a.status, len(a.body))
	}
	var v map[string]any
	if err := yaml.Unmarshal(a.body, &v); err != nil {
		t.Fatalf("served document: %v", err)
	}
}

// TestOpenAPIResponsesLive: the JSON a real server answers has no key the
// document's schema lacks (a field added to a type without its doc shows
// here even when goTypes misses the type).
func TestOpenAPIResponsesLive(t *testing.T) {
	d, _ := loadDoc(t)
	e := newEnv(t, nil)
	r := e.start(t)
	r.mustApply(t, e.doc())
	for path, sch := range map[string]string{"/v1/status": "Status", "/v1/config": "ConfigResult", "/v1/plans/shop": "PlanState"} {
		var body map[string]any
		r.admin(t, "GET", path, nil).decode(t, &body)
		var keys []string
		for k := range body {
			if d.Components.Schemas[sch].Properties[k] == nil {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		if len(keys) > 0 {
			t.Errorf("GET %s answers keys %v that schema %s lacks", path, keys, sch)
		}
	}
}
