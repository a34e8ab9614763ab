import Foundation
import FuzzTargets

// Built two ways. With `-DFUZZING -sanitize=fuzzer` (see the README's Reliability section) libFuzzer supplies `main`
// and calls `LLVMFuzzerTestOneInput`, the target named by ACCEPTANCE_FUZZ_TARGET. Built plainly (as `swift build`
// does), it is a tool: `acceptance-fuzz replay TARGET FILE...` runs inputs once (what CI's corpus replay does), and
// `acceptance-fuzz seed DIR` writes the bundle target's generated seed.

#if FUZZING
let selected: FuzzTarget? = ProcessInfo.processInfo.environment["ACCEPTANCE_FUZZ_TARGET"].flatMap(FuzzTarget.init)

/// libFuzzer's driver, entered from our own `main` (SwiftPM names an executable's entry point itself).
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@main
struct FuzzDriver {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runDriver(&argc, &argv, fuzzOne))
    }
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    guard let target = selected else {
        FileHandle.standardError.write(
            Data(
                "set ACCEPTANCE_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))\n"
                    .utf8))
        exit(2)
    }
    let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    if !target.run(bytes) {
        FileHandle.standardError.write(Data("invariant broken by this input (\(target.rawValue))\n".utf8))
        abort()
    }
    return 0
}
#else
@main
struct FuzzTool {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "replay" where arguments.count >= 2:
            guard let target = FuzzTarget(rawValue: arguments[1]) else { usage() }
            var failed = 0
            for path in arguments.dropFirst(2) {
                guard let data = FileManager.default.contents(atPath: path) else { continue }
                if !target.run(Array(data)) {
                    print("invariant broken: \(path)")
                    failed += 1
                }
            }
            exit(failed == 0 ? 0 : 1)
        case "seed" where arguments.count == 2:
            let path = arguments[1] + "/genuine-attestation.json"
            _ = FileManager.default.createFile(atPath: path, contents: Data(FuzzTarget.genuineAttestation()))
            print(path)
        default:
            usage()
        }
    }

    static func usage() -> Never {
        print(
            "usage: acceptance-fuzz replay TARGET FILE... | seed DIR\n"
                + "targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        exit(64)
    }
}
#endif
