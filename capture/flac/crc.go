package flac

// crc8Table and crc16Table are the byte-at-a-time tables of FLAC's header
// CRC-8 (polynomial x^8+x^2+x+1, 0x07) and frame CRC-16 (polynomial
// x^16+x^15+x^2+1, 0x8005), both starting from 0 and unreflected
// (RFC 9639, 9.1.8 and 9.3).
var (
	crc8Table  = makeCRC8Table()
	crc16Table = makeCRC16Table()
)

func makeCRC8Table() (t [256]uint8) {
	for i := range t {
		c := uint8(i)
		for range 8 {
			if c&0x80 != 0 {
				c = c<<1 ^ 0x07
			} else {
				c <<= 1
			}
		}
		t[i] = c
	}
	return t
}

// makeCRC16Table returns eight tables: t[0] advances the CRC by one byte,
// t[j] by a byte followed by j zero bytes, so crc16 can take eight bytes a
// step (slicing-by-8).
func makeCRC16Table() (t [8][256]uint16) {
	for i := range t[0] {
		c := uint16(i) << 8
		for range 8 {
			if c&0x8000 != 0 {
				c = c<<1 ^ 0x8005
			} else {
				c <<= 1
			}
		}
		t[0][i] = c
	}
	for j := 1; j < 8; j++ {
		for i := range t[j] {
			c := t[j-1][i]
			t[j][i] = c<<8 ^ t[0][c>>8]
		}
	}
	return t
}

func crc8(b []byte) uint8 {
	var c uint8
	for _, v := range b {
		c = crc8Table[c^v]
	}
	return c
}

func crc16(b []byte) uint16 {
	var c uint16
	for len(b) >= 8 {
		c = crc16Table[7][b[0]^byte(c>>8)] ^ crc16Table[6][b[1]^byte(c)] ^
			crc16Table[5][b[2]] ^ crc16Table[4][b[3]] ^
			crc16Table[3][b[4]] ^ crc16Table[2][b[5]] ^
			crc16Table[1][b[6]] ^ crc16Table[0][b[7]]
		b = b[8:]
	}
	for _, v := range b {
		c = c<<8 ^ crc16Table[0][byte(c>>8)^v]
	}
	return c
}
