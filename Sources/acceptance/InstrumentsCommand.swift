import AcceptanceCore
import ArgumentParser
import Foundation
import Harness
import InstrumentCore
import InstrumentTransport

struct InstrumentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "instruments",
        abstract: "List the USB instruments (USBTMC) attached to this station, the way a technician checks the bench.",
        discussion: """
            For each: vendor:product, serial number, where it is plugged in now, its USBTMC capabilities, what \
            `*IDN?` answers, and the device profile with that vendor:product. With --station, also which of the \
            station's instruments are attached and whether each is within calibration.
            Exit 0 when every instrument answered (and every one the station binds is attached and calibrated), 2 \
            otherwise.
            """
    )

    @Option(
        help: "Also check the instruments this station binds (file path, or a name in Fixtures/stations).",
        completion: .custom(Completions.stations))
    var station: String?

    @OptionGroup var workspace: WorkspaceOptions

    func run() async throws {
        let location = Workspace.locate(procedures: workspace.procedures, fixtures: workspace.fixtures)
        let listings: [USBInstruments.Listing]
        do {
            listings = try await USBInstruments.list()
        } catch {
            ConsoleOutput.standardError.write("error: \(error)\n")
            throw ExitCode(Verdict.error.exitCode)
        }
        let profiles = InstrumentProfiles.byUSBID(fixtures: location.fixtures)
        var problems = 0
        var text = listings.isEmpty ? "No USBTMC instruments attached.\n" : ""
        for listing in listings {
            let device = listing.device
            text += "\(device.id)  serial \(device.serial ?? "(none)")  bus \(device.bus) device \(device.address)"
            if let profile = profiles[device.id] { text += "  profile \(profile)" }
            text += "\n"
            if let name = [device.manufacturer, device.productName].compactMap({ $0 }).joined(separator: " ")
                .nonEmpty
            {
                text += "    USB: \(name)\n"
            }
            if let capabilities = listing.capabilities { text += "    \(capabilities.summary)\n" }
            switch listing.identity {
            case let .success(identity): text += "    *IDN? \(identity.description)\n"
            case let .failure(error):
                problems += 1
                text += "    *IDN? failed: \(error)\n"
            }
        }
        if let station {
            let loaded = try StationConfiguration.load(named: station, workspace: location)
            text += "Station '\(loaded.id)':\n"
            for (name, binding) in loaded.bindings.sorted(by: { $0.key < $1.key }) {
                guard let usb = binding as? InstrumentBinding, case let .usb(vendor, product, serial) = usb.line else {
                    continue
                }
                let attached = listings.contains {
                    $0.device.vendor == vendor && $0.device.product == product && $0.device.serial == serial
                }
                var line = "  \(name): \(usb.summary) \(attached ? "attached" : "NOT ATTACHED")"
                if !attached { problems += 1 }
                if let calibration = loaded.calibrations[name] {
                    if let problem = calibration.problem(on: Date()) {
                        line += ", NOT CALIBRATED: \(problem)"
                        problems += 1
                    } else {
                        line += ", calibration \(calibration.certificate) due \(calibration.due)"
                    }
                } else {
                    line += ", no calibration recorded"
                    problems += 1
                }
                text += line + "\n"
            }
        }
        ConsoleOutput.standardOutput.write(text)
        if problems > 0 { throw ExitCode(Verdict.error.exitCode) }
    }
}

extension String {
    fileprivate var nonEmpty: String? { isEmpty ? nil : self }
}
