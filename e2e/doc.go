// Package e2e proves the recorder end to end on real parts, as a shop
// would run it: ffmpeg cameras, a PulseAudio microphone, the GPIO driver on
// gpiotest pins, clips judged by ffprobe, ffmpeg and headless Chromium.
// Sound and picture stay in sync, every frame and sample is in the clip
// once, a spoken sentence is where it was said, a full disk and a power cut
// lose nothing already captured. The recorder's state machine itself is
// tested on fakes in package device.
package e2e
