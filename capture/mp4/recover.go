package mp4

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// maxHeaderBox is the largest moov or moof that Recover reads into memory.
// The moov of a clip and the moof of a one-second fragment are each about a
// kilobyte; a box near this size is damage, not part of a clip.
const maxHeaderBox = 16 << 20

// Recover repairs a clip that may have been cut short, for example by a
// power loss while a Writer was appending to it, and returns its Info.
// f must be open for reading and writing, without O_APPEND.
//
// Recover keeps the ftyp box, the moov box after it and every complete
// fragment after that: a moof box whose trafs refer only to tracks of the
// moov and to sample data inside the mdat box that directly follows it,
// itself complete, with decode times that do not go back. Recover truncates
// f after the last such fragment, writes the durations and frame rate of
// what remains into the moov as Writer.Finalize does, and syncs f. On a clip
// that is already whole it only rewrites the same values. It cannot notice damaged bytes
// inside the sample data of a complete fragment.
//
// If f does not start with an ftyp box and a complete moov box of a
// fragmented movie, Recover returns an error wrapping ErrNotClip; if no
// complete fragment follows the moov, an error wrapping ErrNoFragments. In
// both cases it leaves f unmodified.
func Recover(f *os.File) (Info, error) {
	in, err := recoverClip(f)
	if err != nil {
		return Info{}, fmt.Errorf("mp4: recover %s: %w", f.Name(), err)
	}
	return in, nil
}

func recoverClip(f *os.File) (Info, error) {
	st, err := f.Stat()
	if err != nil {
		return Info{}, err
	}
	size := st.Size()
	ftyp, err := readHeader(f, 0, size)
	if err != nil {
		return Info{}, fmt.Errorf("ftyp: %w: %w", err, ErrNotClip)
	}
	if ftyp.typ != "ftyp" {
		return Info{}, fmt.Errorf("file starts with a %q box, want ftyp: %w", ftyp.typ, ErrNotClip)
	}
	moov, err := readHeader(f, ftyp.end(), size)
	if err != nil {
		return Info{}, fmt.Errorf("moov: %w: %w", err, ErrNotClip)
	}
	if moov.typ != "moov" {
		return Info{}, fmt.Errorf("%q box after ftyp, want moov: %w", moov.typ, ErrNotClip)
	}
	body, err := readBody(f, moov)
	if err != nil {
		return Info{}, fmt.Errorf("moov: %w: %w", err, ErrNotClip)
	}
	lay, err := parseMoov(body, moov.off+moov.hdr)
	if err != nil {
		return Info{}, fmt.Errorf("%w: %w", err, ErrNotClip)
	}

	prog := make([]progress, len(lay.tracks))
	next := make([]progress, len(lay.tracks))
	end, fragments := moov.end(), 0
	for {
		copy(next, prog)
		n, ferr := readFragment(f, end, size, &lay, next)
		if ferr != nil {
			if fragments == 0 {
				return Info{}, fmt.Errorf("first fragment: %w: %w", ferr, ErrNoFragments)
			}
			break
		}
		copy(prog, next)
		end = n
		fragments++
	}
	if end < size {
		if err := f.Truncate(end); err != nil {
			return Info{}, err
		}
	}
	if err := lay.patch(f, prog); err != nil {
		return Info{}, err
	}
	if err := f.Sync(); err != nil {
		return Info{}, err
	}
	return lay.info(prog, fragments, end), nil
}

// readFragment reads the fragment at file offset off of a clip laid out as
// l, whose first size bytes may be used, and adds its samples to prog. It
// returns the offset just past the fragment's mdat.
func readFragment(r io.ReaderAt, off, size int64, l *layout, prog []progress) (int64, error) {
	moof, err := readHeader(r, off, size)
	if err != nil {
		return 0, err
	}
	if moof.typ != "moof" {
		return 0, fmt.Errorf("%q box where a moof should be", moof.typ)
	}
	mdat, err := readHeader(r, moof.end(), size)
	if err != nil {
		return 0, err
	}
	if mdat.typ != "mdat" {
		return 0, fmt.Errorf("%q box after a moof, want mdat", mdat.typ)
	}
	body, err := readBody(r, moof)
	if err != nil {
		return 0, err
	}
	fr, err := parseMoof(body, moof.off+moof.hdr, moof.off, size, l)
	if err != nil {
		return 0, err
	}
	if fr.lo <= fr.hi && (fr.lo < mdat.off+mdat.hdr || fr.hi > mdat.end()) {
		return 0, errors.New("moof refers to data outside its mdat")
	}
	for _, run := range fr.runs {
		if !prog[run.track].add(run) {
			return 0, fmt.Errorf("track %d goes back in time", l.tracks[run.track].id)
		}
	}
	return mdat.end(), nil
}

// boxHeader locates a box in a file.
type boxHeader struct {
	typ  string
	off  int64 // where the box starts
	hdr  int64 // header length
	size int64 // box length, header included
}

func (h boxHeader) end() int64 { return h.off + h.size }

// readHeader reads the header of the box at off, which must end within the
// first limit bytes of r.
func readHeader(r io.ReaderAt, off, limit int64) (boxHeader, error) {
	var b [16]byte
	if limit-off < 8 {
		return boxHeader{}, errors.New("box header is cut off")
	}
	if err := readAt(r, b[:8], off); err != nil {
		return boxHeader{}, err
	}
	h := boxHeader{typ: string(b[4:8]), off: off, hdr: 8, size: int64(binary.BigEndian.Uint32(b[:]))}
	switch h.size {
	case 0:
		return boxHeader{}, fmt.Errorf("%q box has no size", h.typ)
	case 1:
		if limit-off < 16 {
			return boxHeader{}, errors.New("box header is cut off")
		}
		if err := readAt(r, b[8:], off+8); err != nil {
			return boxHeader{}, err
		}
		size := binary.BigEndian.Uint64(b[8:])
		if size > math.MaxInt64 {
			return boxHeader{}, fmt.Errorf("%q box has size %d", h.typ, size)
		}
		h.size, h.hdr = int64(size), 16
	}
	if h.size < h.hdr {
		return boxHeader{}, fmt.Errorf("%q box has size %d", h.typ, h.size)
	}
	if h.size > limit-off {
		return boxHeader{}, fmt.Errorf("%q box is cut off", h.typ)
	}
	return h, nil
}

// readAt fills b from r at off. io.ReaderAt lets a reader return io.EOF
// with all of b when b ends where the input does (an S3 object's reader
// does): that is a whole read, not an error.
func readAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) && err == io.EOF {
		return nil
	}
	return err
}

// readBody reads the body of the box h, which must be at most maxHeaderBox
// bytes.
func readBody(r io.ReaderAt, h boxHeader) ([]byte, error) {
	n := h.size - h.hdr
	if n > maxHeaderBox {
		return nil, fmt.Errorf("%q box of %d bytes is too large", h.typ, h.size)
	}
	b := make([]byte, n)
	if err := readAt(r, b, h.off+h.hdr); err != nil {
		return nil, err
	}
	return b, nil
}
