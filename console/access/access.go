// Package access decides who may reach the managers' console and what
// they may do there.
//
// On a loopback address with no users configured, every request is from
// one local manager (Options.Local): the person at the machine. Once the
// console has users, or listens on any other address, every request but
// the login page and /static/ needs a session, made by logging in with a
// name and password from the configuration's [[console.user]] tables. A
// console on a non-loopback address refuses to start without users and
// TLS (ErrNeedsUsers, ErrNeedsTLS).
//
// Sessions live in the Guard's memory only: restarting the console logs
// everyone out, and a change to the users takes effect at the restart.
//
// Guard.Handler also refuses what a browser can be tricked into sending:
// a Host other than the loopback address's own names (DNS rebinding), a
// cross-origin unsafe request (http.CrossOriginProtection), and an unsafe
// request without the session's CSRF token.
package access

import (
	"context"
	"errors"
	"net/http"

	"mamoru/config"
)

// Role is what a user may do, as config.ConsoleUser.Role says.
type Role string

// The roles.
const (
	Viewer  Role = config.RoleViewer  // sees incidents
	Manager Role = config.RoleManager // may do everything
)

// Action is something a user does to incidents.
type Action int

// The actions. A Viewer may only View.
const (
	View     Action = iota // see incidents and play clips
	Review                 // mark reviewed, write a note, mark a false press
	Hold                   // hold an incident against expiry, or release it
	Share                  // make a link or copy for someone else
	Handover               // make the hand-over package for a lawyer or the police
	Delete                 // delete an incident
)

var actionNames = [...]string{View: "view", Review: "review", Hold: "hold or release", Share: "share", Handover: "hand over", Delete: "delete"}

func (a Action) String() string {
	if a < 0 || int(a) >= len(actionNames) {
		return "act"
	}
	return actionNames[a]
}

// User is whom a request is from.
type User struct {
	Name string
	Role Role
}

// Can reports whether u may do a: a Manager everything, a Viewer only
// View, anyone else nothing.
func (u User) Can(a Action) bool {
	switch u.Role {
	case Manager:
		return a >= View && a <= Delete
	case Viewer:
		return a == View
	}
	return false
}

// Errors of New a caller branches on.
var (
	// ErrNeedsUsers: the console listens beyond this machine but no one
	// could log in.
	ErrNeedsUsers = errors.New("access: a console listening beyond this machine needs users ([[console.user]], add one with 'mamoru console adduser NAME --role manager')")
	// ErrNeedsTLS: the console listens beyond this machine without TLS,
	// which would send passwords and clips in the clear.
	ErrNeedsTLS = errors.New("access: a console listening beyond this machine needs TLS (console.tls_cert and console.tls_key), or passwords and clips cross the network in the clear")
)

type ctxKey struct{}

// identity is what Handler puts in a request's context.
type identity struct {
	user    User
	csrf    string
	session bool // logged in, rather than this machine's user without users
}

func withIdentity(r *http.Request, id identity) *http.Request {
	return r.WithContext(context.WithValue(r.Context(), ctxKey{}, id))
}

// UserOf returns whom r is from, and false if r did not pass through
// Guard.Handler or is not logged in (the login page, /static/).
func UserOf(r *http.Request) (User, bool) {
	id, ok := r.Context().Value(ctxKey{}).(identity)
	return id.user, ok
}

// CSRFToken returns the token r's pages must send back with every unsafe
// request, in a form field "csrf" or the header X-CSRF-Token: embed it in
// each form and in <meta name="csrf-token">. It is "" where UserOf is
// false.
func CSRFToken(r *http.Request) string {
	id, _ := r.Context().Value(ctxKey{}).(identity)
	return id.csrf
}

// LoggedIn reports whether r is from a user who logged in, and so may log
// out: false for this machine's user on a console without users.
func LoggedIn(r *http.Request) bool {
	id, _ := r.Context().Value(ctxKey{}).(identity)
	return id.session
}

// Require serves h only to a user who may do a; anyone else gets 403 with
// a message saying what they may not do (JSON under /api/).
func Require(a Action, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, ok := UserOf(r)
		if !ok || !u.Can(a) {
			who := "この利用者 / this user"
			if ok {
				who = u.Name + " (" + string(u.Role) + ")"
			}
			refuse(w, r, http.StatusForbidden, who+": この操作（"+a.String()+"）は店長（manager）だけができます / only a manager may "+a.String()+" incidents")
			return
		}
		h.ServeHTTP(w, r)
	})
}
