import AcceptanceCore
import ModbusCore
import Testing

@testable import Simulation

@Suite("Power shelf physics")
struct PowerShelfTests {
    func power(_ shelf: PowerShelf, _ index: Int) -> Double {
        shelf.reading(index, "output_power")?.quantity?.value ?? .nan
    }

    @Test func suppliesShareTheLoadAndCoverAFailure() {
        var settings = PowerShelfSettings()
        settings.load = 18_000
        let shelf = PowerShelf(count: 6, settings: settings)
        #expect((0..<6).allSatisfy { power(shelf, $0) == 3_000 })
        var failed = PSUPhysics(shelf: shelf, index: 2)
        failed.apply(.supplyFailure)
        #expect(power(shelf, 2) == 0)
        #expect(shelf.reading(2, "output_fault") == .bool(true))
        #expect([0, 1, 3, 4, 5].allSatisfy { power(shelf, $0) == 3_600 }, "five carry the sixth's share")
        var unplugged = PSUPhysics(shelf: shelf, index: 4)
        unplugged.apply(.inputLoss)
        #expect(shelf.reading(4, "input_loss") == .bool(true))
        #expect(shelf.reading(4, "input_voltage") == .quantity(Quantity(0, .volt)))
        #expect(power(shelf, 0) == 4_500)
    }

    @Test func pastTheRatingTheBusSags() {
        var settings = PowerShelfSettings()
        settings.load = 40_000
        let shelf = PowerShelf(count: 6, settings: settings)
        let volts = shelf.reading(0, "output_voltage")?.quantity?.value ?? 0
        #expect(volts < 48, "6 × 5.5 kW cannot carry 40 kW at 50 V")
        #expect(power(shelf, 0) == 5_500)
    }

    @Test func theOutputCanBeSwitchedByItsRegister() throws {
        let shelf = PowerShelf(count: 2)
        var physics = PSUPhysics(shelf: shelf, index: 1)
        try physics.command("output_enable", .text("off"))
        #expect(shelf.reading(1, "output_on") == .bool(false))
        #expect(throws: CDUCommandError.self) { try physics.command("output_enable", .text("maybe")) }
    }
}
