package server

import (
	"encoding/json"

	"github.com/haven-dr/haven/internal/api"
	"github.com/haven-dr/haven/internal/store"
)

// wire converts a store or orchestrator value into its API type (package
// api) through JSON, which both write alike: the answer's bytes are what
// the storage type would encode, and a field only one side has is caught
// by TestWireTypesMatchStorage, not dropped unnoticed.
func wire[T any](v any) (T, error) {
	var out T
	b, err := json.Marshal(v)
	if err != nil {
		return out, err
	}
	return out, json.Unmarshal(b, &out)
}

// wireList is wire for a list; an empty one is [] on the wire, not null.
func wireList[T any, S any](in []S) ([]T, error) {
	out := make([]T, 0, len(in))
	for _, v := range in {
		w, err := wire[T](v)
		if err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

func wireJob(j *store.Job, err error) (any, error) {
	if err != nil {
		return nil, err
	}
	return wire[api.Job](j)
}

// wireRefs is wireList for a list of pointers; nil stays nil.
func wireRefs[T any, S any](in []*S) ([]*T, error) {
	var out []*T
	for _, v := range in {
		w, err := wire[T](v)
		if err != nil {
			return nil, err
		}
		out = append(out, &w)
	}
	return out, nil
}
