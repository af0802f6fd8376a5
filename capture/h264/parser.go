package h264

import (
	"bytes"
	"fmt"
	"io"
)

// Limits a Parser applies when its fields leave them unset.
const (
	// DefaultMaxAccessUnitSize is far above any access unit a camera encoder
	// makes (a 1080p IDR frame is a few hundred KiB) and small enough for a
	// Raspberry Pi's memory.
	DefaultMaxAccessUnitSize = 8 << 20
	// DefaultStartCodeWindow is how far into a stream the first start code
	// must be.
	DefaultStartCodeWindow = 1 << 20
	// MaxNALUnits is the most NAL units an access unit may hold. A 1080p
	// frame cut into a slice per macroblock row has 68; garbage full of
	// start codes would otherwise cost memory out of proportion to its size.
	MaxNALUnits = 1 << 14
)

const (
	initialBuffer = 256 << 10 // the buffer's first size
	minRead       = 32 << 10  // the least free space offered to Read
	maxEmptyReads = 100       // Reads returning nothing before giving up, as bufio does
)

var startCode = []byte{0, 0, 1}

// A Parser reads an H.264 Annex B byte stream and cuts it into access units.
//
// An access unit ends where the next one begins (ITU-T H.264 7.4.1.2.3): at
// an access unit delimiter, SPS, PPS, SEI or NAL unit of type 14 to 18 that
// follows a slice, or at a slice whose first_mb_in_slice is 0 that follows a
// slice. A frame coded as several slices is one access unit. So an access
// unit is complete, and returned, when the first bytes of the next one have
// arrived, or when the stream ends. This holds for the encoders a recorder
// uses; streams using arbitrary slice order or redundant pictures (Baseline
// profile options no camera encoder uses) would be cut wrong.
//
// Start codes may be 3 or 4 bytes long and split across reads. Bytes before
// the first start code, zero bytes between NAL units and empty NAL units are
// dropped.
//
// A Parser is not safe for concurrent use.
type Parser struct {
	// MaxAccessUnitSize bounds an access unit's bytes in the stream, counted
	// from the start code of its first NAL unit to the start code after its
	// last, so start codes and zero padding count. An access unit over the
	// bound ends parsing with ErrAccessUnitTooLarge, so memory stays bounded
	// on any stream. Zero or less means DefaultMaxAccessUnitSize. Set it
	// before the first call to Next.
	MaxAccessUnitSize int
	// StartCodeWindow is how many bytes at the start of the stream must hold
	// a complete first start code; a stream that does not is not H.264 Annex
	// B, and parsing ends with ErrNoStartCode. Zero or less means
	// DefaultStartCodeWindow. Set it before the first call to Next.
	StartCodeWindow int

	r    io.Reader
	rerr error // a read error, returned once the bytes read before it are used
	eof  bool  // r has returned io.EOF
	err  error // what Next returns from now on, io.EOF included

	// buf holds the bytes read and still needed; buf[0] is at stream offset
	// base. Positions below are indexes into buf.
	buf  []byte
	base int64

	synced  bool // a start code has been seen
	head    int  // the first byte still needed: the current access unit's first start code
	scan    int  // where the search for the next start code resumes
	open    bool // a NAL unit begins at nal and its end is not yet known
	decided bool // the open NAL unit belongs to the current access unit
	nal     int  // the open NAL unit's header byte
	nalSC   int  // the open NAL unit's start code
	vcl     bool // the current access unit holds a slice, the open NAL unit included

	spans []span   // the closed NAL units of the current access unit
	nalus [][]byte // backs AccessUnit.NALUs
}

// A span is where a NAL unit lies in Parser.buf: buf[start:end].
type span struct{ start, end int }

// NewParser returns a Parser reading the stream from r.
func NewParser(r io.Reader) *Parser {
	return &Parser{r: r}
}

// Next returns the next access unit. Its NAL units alias the Parser's buffer
// and are valid until the next call to Next.
//
// At the end of the stream Next returns the last access unit, and then
// io.EOF. Any other error wraps ErrNoStartCode, ErrAccessUnitTooLarge or the
// reader's error; access units completed before a read error are returned
// first. Once Next has returned an error it returns the same error from then
// on: the caller restarts the stream with a new Parser.
func (p *Parser) Next() (AccessUnit, error) {
	if p.err != nil {
		return AccessUnit{}, p.err
	}
	// The caller is done with the last access unit.
	p.spans = p.spans[:0]
	p.vcl = false
	if p.open {
		p.head = p.nalSC
	}
	for {
		if p.open && !p.decided {
			typ, first, ok := p.peek()
			if !ok {
				if err := p.fill(); err != nil {
					return p.fail(err)
				}
				continue
			}
			if first && p.vcl {
				return p.emit(), nil
			}
			p.decided = true
			if typ >= NALSlice && typ <= NALIDR {
				p.vcl = true
			}
		}

		i := bytes.Index(p.buf[p.scan:], startCode)
		if i < 0 {
			if p.eof {
				return p.finish()
			}
			// A start code may begin in the last two bytes and end in the
			// next read.
			p.scan = max(p.scan, len(p.buf)-2)
			if !p.synced {
				if n := p.base + int64(len(p.buf)); n >= int64(p.window()) {
					return p.fail(fmt.Errorf("%w in the first %d bytes", ErrNoStartCode, p.window()))
				}
				p.head = p.scan
			} else if len(p.buf)-2-p.head > p.maxSize() {
				return p.fail(p.tooLarge())
			}
			if err := p.fill(); err != nil {
				return p.fail(err)
			}
			continue
		}

		sc := p.scan + i
		if !p.synced {
			if p.base+int64(sc)+3 > int64(p.window()) {
				return p.fail(fmt.Errorf("%w in the first %d bytes", ErrNoStartCode, p.window()))
			}
			p.synced = true
			p.head = sc
		} else if p.open {
			if sc-p.head > p.maxSize() {
				return p.fail(p.tooLarge())
			}
			if err := p.close(sc); err != nil {
				return p.fail(err)
			}
		}
		p.open, p.decided = true, false
		p.nalSC, p.nal, p.scan = sc, sc+3, sc+3
	}
}

// peek reads the open NAL unit's type and whether it begins a new access
// unit when the current one already holds a slice. ok is false when the
// bytes needed have not been read yet.
func (p *Parser) peek() (typ byte, first, ok bool) {
	if p.nal >= len(p.buf) {
		return 0, false, p.eof // an empty NAL unit at the end joins nothing
	}
	typ = p.buf[p.nal] & 0x1f
	switch typ {
	case NALAUD, NALSPS, NALPPS, NALSEI, 14, 15, 16, 17, 18:
		return typ, true, true
	case NALSlice, nalPartitionA, NALIDR:
		// first_mb_in_slice is ue(v), so it is 0 exactly when its first bit
		// is 1. Emulation prevention cannot touch the byte after a non-zero
		// header byte.
		if p.nal+1 >= len(p.buf) {
			return typ, true, p.eof
		}
		return typ, p.buf[p.nal+1]&0x80 != 0, true
	}
	return typ, false, true
}

// close ends the open NAL unit before end and adds it to the current access
// unit unless it is empty.
func (p *Parser) close(end int) error {
	for end > p.nal && p.buf[end-1] == 0 {
		end--
	}
	if end == p.nal {
		return nil
	}
	if len(p.spans) == MaxNALUnits {
		return fmt.Errorf("%w: more than %d NAL units", ErrAccessUnitTooLarge, MaxNALUnits)
	}
	p.spans = append(p.spans, span{p.nal, end})
	return nil
}

// finish handles the end of the stream: the open NAL unit ends with it.
func (p *Parser) finish() (AccessUnit, error) {
	if !p.synced {
		if n := p.base + int64(len(p.buf)); n > 0 {
			return p.fail(fmt.Errorf("%w in the %d bytes of the stream", ErrNoStartCode, n))
		}
		return p.fail(io.EOF)
	}
	if p.open {
		if len(p.buf)-p.head > p.maxSize() {
			return p.fail(p.tooLarge())
		}
		p.open = false
		if err := p.close(len(p.buf)); err != nil {
			return p.fail(err)
		}
		p.scan = len(p.buf)
	}
	if len(p.spans) == 0 {
		return p.fail(io.EOF)
	}
	return p.emit(), nil
}

// emit returns the current access unit.
func (p *Parser) emit() AccessUnit {
	var au AccessUnit
	p.nalus = p.nalus[:0]
	for _, s := range p.spans {
		nal := p.buf[s.start:s.end:s.end]
		p.nalus = append(p.nalus, nal)
		switch NALType(nal) {
		case NALIDR:
			au.IDR = true
			au.HasBSlice = au.HasBSlice || isBSlice(nal)
		case NALSlice, nalPartitionA:
			au.HasBSlice = au.HasBSlice || isBSlice(nal)
		case NALSPS:
			if au.SPS == nil {
				au.SPS = nal
			}
		case NALPPS:
			if au.PPS == nil {
				au.PPS = nal
			}
		}
	}
	au.NALUs = p.nalus
	return au
}

// isBSlice reports whether the slice header at the start of nal, a slice
// NAL unit, has a B slice_type.
func isBSlice(nal []byte) bool {
	r := bitReader{b: nal[1:]}
	r.ue("first_mb_in_slice")
	t := r.ue("slice_type")
	return !r.failed && (t == 1 || t == 6)
}

// fill reads more of the stream into buf, first making room by dropping the
// bytes before head, which are no longer needed.
func (p *Parser) fill() error {
	if p.rerr != nil {
		return p.rerr
	}
	if cap(p.buf)-len(p.buf) < minRead {
		keep := len(p.buf) - p.head
		if cap(p.buf)-keep >= minRead {
			copy(p.buf, p.buf[p.head:])
		} else {
			// Doubling keeps growth rare; the limit keeps a stream near
			// MaxAccessUnitSize from costing twice that.
			size := min(max(initialBuffer, 2*cap(p.buf)), p.maxSize()+2*minRead)
			buf := make([]byte, keep, max(size, keep+minRead))
			copy(buf, p.buf[p.head:])
			p.buf = buf
		}
		p.buf = p.buf[:keep]
		p.shift(p.head)
	}
	for range maxEmptyReads {
		free := p.buf[len(p.buf):cap(p.buf)]
		n, err := p.r.Read(free)
		if n < 0 || n > len(free) {
			return fmt.Errorf("h264: read: reader returned %d for a %d-byte buffer", n, len(free))
		}
		p.buf = p.buf[:len(p.buf)+n]
		if err == io.EOF {
			p.eof = true
			return nil
		}
		if err != nil {
			p.rerr = fmt.Errorf("h264: read: %w", err)
			if n > 0 {
				return nil
			}
			return p.rerr
		}
		if n > 0 {
			return nil
		}
	}
	return fmt.Errorf("h264: read: %w", io.ErrNoProgress)
}

// shift renumbers positions after the first d bytes of buf were dropped.
func (p *Parser) shift(d int) {
	p.base += int64(d)
	p.head -= d
	p.scan -= d
	p.nal -= d
	p.nalSC -= d
	for i := range p.spans {
		p.spans[i].start -= d
		p.spans[i].end -= d
	}
}

func (p *Parser) fail(err error) (AccessUnit, error) {
	p.err = err
	return AccessUnit{}, err
}

func (p *Parser) tooLarge() error {
	return fmt.Errorf("%w: more than %d bytes", ErrAccessUnitTooLarge, p.maxSize())
}

func (p *Parser) maxSize() int {
	if p.MaxAccessUnitSize > 0 {
		return p.MaxAccessUnitSize
	}
	return DefaultMaxAccessUnitSize
}

func (p *Parser) window() int {
	if p.StartCodeWindow > 0 {
		return p.StartCodeWindow
	}
	return DefaultStartCodeWindow
}
