package chattest

import (
	"net/http"
	"sync"
)

// Received is the state a strict stand-in for a chat service keeps: the messages it
// accepted, and an answer a test sets to make it answer otherwise (a rate limit). An
// endpoint embeds it; its methods are safe for concurrent use.
type Received[M any] struct {
	mu       sync.Mutex
	messages []M
	answer   func(w http.ResponseWriter) bool
}

// Add keeps an accepted message.
func (r *Received[M]) Add(m M) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.messages = append(r.messages, m)
	return len(r.messages)
}

// Messages returns the messages accepted so far.
func (r *Received[M]) Messages() []M {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]M(nil), r.messages...)
}

// AnswerWith makes the endpoint call answer first for every request; answer returns true
// when it answered.
func (r *Received[M]) AnswerWith(answer func(w http.ResponseWriter) bool) {
	r.mu.Lock()
	r.answer = answer
	r.mu.Unlock()
}

// Answered runs the answer AnswerWith set, if any: true when it answered the request.
func (r *Received[M]) Answered(w http.ResponseWriter) bool {
	r.mu.Lock()
	answer := r.answer
	r.mu.Unlock()
	return answer != nil && answer(w)
}
