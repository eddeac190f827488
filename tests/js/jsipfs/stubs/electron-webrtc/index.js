module.exports = function () { throw new Error("electron-webrtc is not available in disco tests") }
