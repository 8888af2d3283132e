package server_test

import (
	"reflect"
	"testing"

	"github.com/haven-dr/haven/internal/alert"
	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/orchestrator"
	"github.com/haven-dr/haven/internal/store"
)

// TestWireTypesMatchStorage: each API type has exactly the JSON fields,
// with the same JSON types, of the store or orchestrator type the server
// converts it from (through JSON), at every depth. A field added on one
// side only fails here instead of vanishing from the answers.
func TestWireTypesMatchStorage(t *testing.T) {
	pairs := []struct{ from, to reflect.Type }{
		{reflect.TypeFor[store.Job](), reflect.TypeFor[api.Job]()},
		{reflect.TypeFor[store.LogLine](), reflect.TypeFor[api.LogLine]()},
		{reflect.TypeFor[store.PlanState](), reflect.TypeFor[api.PlanState]()},
		{reflect.TypeFor[store.Drill](), reflect.TypeFor[api.Drill]()},
		{reflect.TypeFor[store.AuditEntry](), reflect.TypeFor[api.AuditEntry]()},
		{reflect.TypeFor[orchestrator.Report](), reflect.TypeFor[api.Report]()},
		{reflect.TypeFor[orchestrator.Params](), reflect.TypeFor[api.Params]()},
		{reflect.TypeFor[alert.Alert](), reflect.TypeFor[api.Alert]()},
		{reflect.TypeFor[orchestrator.SLAReport](), reflect.TypeFor[api.SLAReport]()},
	}
	for _, p := range pairs {
		sameJSON(t, p.to.String(), p.from, p.to)
	}
}

func sameJSON(t *testing.T, at string, a, b reflect.Type) {
	t.Helper()
	a, b = deref(a), deref(b)
	if ja, jb := jsonType(a), jsonType(b); ja != jb {
		t.Errorf("%s: JSON type %q (%v) vs %q (%v)", at, ja, a, jb, b)
		return
	}
	switch {
	case a.Kind() == reflect.Struct && jsonType(a) == "object":
		fa, fb := jsonFields(a), jsonFields(b)
		for name, ta := range fa {
			tb, ok := fb[name]
			if !ok {
				t.Errorf("%s: %v has JSON field %q, %v lacks it", at, a, name, b)
				continue
			}
			sameJSON(t, at+"."+name, ta, tb)
		}
		for name := range fb {
			if _, ok := fa[name]; !ok {
				t.Errorf("%s: %v has JSON field %q, %v lacks it", at, b, name, a)
			}
		}
	case (a.Kind() == reflect.Slice || a.Kind() == reflect.Map) && jsonType(a) == jsonType(b) && a.Kind() == b.Kind():
		sameJSON(t, at+"[]", a.Elem(), b.Elem())
	}
}
