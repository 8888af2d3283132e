package vaultserve

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/haven-dr/haven/internal/blob"
)

func (s *Server) get(w http.ResponseWriter, r *http.Request, name string, _ bool) error {
	off, err := queryInt(r, "offset", 0)
	if err != nil {
		return err
	}
	n, err := queryInt(r, "length", -1)
	if err != nil {
		return err
	}
	data, err := s.be.Get(r.Context(), name, off, n)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", strconv.Itoa(len(data)))
	w.Write(data) // an error here is the client's: nothing to report to it
	return nil
}

func queryInt(r *http.Request, key string, def int64) (int64, error) {
	v := r.URL.Query().Get(key)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < -1 {
		return 0, fmt.Errorf("%w: %s=%q", errBadRequest, key, v)
	}
	return n, nil
}

func (s *Server) stat(w http.ResponseWriter, r *http.Request, name string, _ bool) error {
	fi, err := s.be.Stat(r.Context(), name)
	if err != nil {
		return err
	}
	w.Header().Set("X-Haven-Size", strconv.FormatInt(fi.Size, 10))
	w.Header().Set("X-Haven-Modtime", fi.ModTime.UTC().Format(time.RFC3339Nano))
	return nil
}

// put reads the whole body before storing anything, and stores it only if
// it is as long as announced: an upload cut off by a dead client or a
// killed server leaves nothing (fileblob writes a temporary file, syncs it
// and renames it into place).
func (s *Server) put(w http.ResponseWriter, r *http.Request, name string, admin bool) error {
	if r.ContentLength < 0 {
		http.Error(w, "Content-Length required", http.StatusLengthRequired)
		return nil
	}
	if r.ContentLength > MaxObject {
		return fmt.Errorf("%w: %d bytes (at most %d)", errTooLarge, r.ContentLength, MaxObject)
	}
	data := make([]byte, r.ContentLength)
	if n, err := io.ReadFull(r.Body, data); err != nil {
		return fmt.Errorf("%w: body of %d bytes, announced %d: %v", errBadRequest, n, r.ContentLength, err)
	}
	defer s.lockName(name)()
	same, err := blob.SameContent(r.Context(), s.be, name, data)
	if err != nil {
		return err
	}
	switch {
	case same != nil && *same:
		w.WriteHeader(http.StatusOK) // a retried write whose first attempt landed
		return nil
	case same != nil && !admin:
		return blob.Refused("overwrite", name)
	case same != nil:
		if err := s.deletable(r, name); err != nil {
			return err
		}
	}
	if err := s.be.Put(r.Context(), name, data); err != nil {
		return err
	}
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (s *Server) delete(w http.ResponseWriter, r *http.Request, name string, _ bool) error {
	defer s.lockName(name)()
	if err := s.deletable(r, name); err != nil {
		return err
	}
	if err := s.be.Delete(r.Context(), name); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// deletable refuses to destroy an object younger than the delete delay.
func (s *Server) deletable(r *http.Request, name string) error {
	if s.cfg.DeleteDelay <= 0 {
		return nil
	}
	fi, err := s.be.Stat(r.Context(), name)
	if err != nil {
		return nil // absent: deleting it destroys nothing
	}
	if age := s.now().Sub(fi.ModTime); age < s.cfg.DeleteDelay {
		return fmt.Errorf("%w (written %s ago, the delete delay is %s)", blob.Refused("delete", name), age.Round(time.Second), s.cfg.DeleteDelay)
	}
	return nil
}

// Entry is one line of a listing; the last line has End (or Error) set, so
// a listing cut short is never mistaken for a complete one.
type Entry struct {
	Name    string    `json:"name,omitempty"`
	Size    int64     `json:"size,omitempty"`
	ModTime time.Time `json:"mtime,omitzero"`
	End     bool      `json:"end,omitempty"`
	Error   string    `json:"error,omitempty"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, _ string, _ bool) error {
	w.Header().Set("Content-Type", "application/x-ndjson")
	enc := json.NewEncoder(w)
	err := s.be.List(r.Context(), r.URL.Query().Get("prefix"), func(fi blob.Info) error {
		return enc.Encode(Entry{Name: fi.Name, Size: fi.Size, ModTime: fi.ModTime.UTC()})
	})
	if err != nil {
		return enc.Encode(Entry{Error: err.Error()})
	}
	return enc.Encode(Entry{End: true})
}
